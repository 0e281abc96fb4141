"""Shared set-up for Porte's benchmarks: every component real, every one torn down.

- database: a dedicated PostgreSQL database `porte_bench` on 127.0.0.1:5432 (user postgres), created and dropped
  here; a SQLite file in a temporary directory when PostgreSQL does not answer;
- broker: Redis db 14 on 127.0.0.1:6379 (`PORTE_BENCH_REDIS_DB` to change; refused while another program is
  connected to that db, flushed before and after); kombu's `filesystem://` transport in the temporary directory
  when Redis does not answer;
- cache: Django's cache in that same Redis db (`CACHE_URL`), for every process; the default (file cache in the
  temporary directory) when Redis does not answer;
- AWS: a moto server process on a free loopback port (`aws=False`: none, and AWS_ENDPOINT_URL points at a closed
  loopback port so nothing can reach real AWS);
- Celery: a real `celery -A portal worker` process (optionally with embedded beat, `-B`);
- web: Porte's WSGI app under gunicorn on a free loopback port (`web=True` reserves the port and makes it
  PORTE_PUBLIC_URL; `start_web()` starts it).

Usage (the environment variables must be set before Django is imported, so import nothing from the project
before `BenchEnv.start()`):

    with BenchEnv("time_to_access") as env:
        env.start_worker(pool="solo", beat=False)
        ...

`debug=False` sets DEBUG=0 for this process and its children (production-like: no query log); the default leaves
Django's default (DEBUG on outside production).

Only one benchmark runs at a time (a lock file guards the shared database name and Redis db).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.peers.common import free_port  # noqa: E402  (after the path: the benchmarks run as scripts)

PYTHON = sys.executable
PG_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=2"
PG_DATABASE = "porte_bench"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_DB = int(os.environ.get("PORTE_BENCH_REDIS_DB", "14"))
LOCK_PATH = Path(tempfile.gettempdir()) / "porte-bench.lock"


class BenchError(RuntimeError):
    """A benchmark could not run (a component did not start, or something timed out). The message says which."""


# --- small utilities -----------------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    interval: float,
    what: str,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll `predicate()` until truthy; raise BenchError naming `what` (plus `detail()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail else ""
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values),
        "min": min(values),
        "n": len(values),
    }


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def print_row(label: str, values: Sequence[float], width: int = 38) -> dict[str, float]:
    s = summary(values)
    print(
        f"  {label:<{width}} p50 {fmt_ms(s['p50'])}   p95 {fmt_ms(s['p95'])}   max {fmt_ms(s['max'])}"
        f"   (n={len(values)})"
    )
    return s


def base_parser(description: str, *, default_n: int, default_pool: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--n", type=int, default=default_n, help=f"measured iterations (default {default_n})")
    parser.add_argument(
        "--pool",
        choices=["solo", "prefork"],
        default=default_pool,
        help=f"Celery worker pool (default {default_pool}; prefork runs -c 2)",
    )
    return parser


def _tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# --- processes -----------------------------------------------------------------------------------------------


class ChildProcess:
    """A process started in its own session, so stopping it also stops its children (beat, prefork pool)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.cmd, self.env, self.log_path = name, cmd, env, log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, chars: int = 4000) -> str:
        return f"--- last lines of {self.name} log ({self.log_path}) ---\n{_tail(self.log_path, chars)}"

    def stop(self, grace: float = 15.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Children left behind by a parent that exited on its own (e.g. a beat process): same session id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


# --- the environment -----------------------------------------------------------------------------------------


class BenchEnv:
    def __init__(
        self,
        name: str,
        *,
        sweep_seconds: float | None = None,
        aws: bool = True,
        web: bool = False,
        debug: bool | None = None,
    ) -> None:
        self.name = name
        self.sweep_seconds = sweep_seconds
        self.aws = aws
        self.debug = debug
        self.web_port = free_port() if web else 0
        self.web_url = f"http://127.0.0.1:{self.web_port}" if web else ""
        self.web: ChildProcess | None = None
        self.web_desc = ""
        self.tmp = Path(tempfile.mkdtemp(prefix=f"porte-bench-{name}-"))
        self.db_engine = ""
        self.db_detail = ""
        self.broker = ""
        self.moto: ChildProcess | None = None
        self.moto_url = ""
        self.worker: ChildProcess | None = None
        self.worker_desc = ""
        self._pg_created = False
        self._redis_used = False
        self._lock_file: Any = None
        self._django_ready = False

    # context manager ---------------------------------------------------------------------------------------
    def __enter__(self) -> BenchEnv:
        # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so the clean-up below still runs.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # start -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._lock()
        database_url = self._database()
        broker_url = self._broker()
        if self.aws:
            self._start_moto()
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "portal.settings",
                "DATABASE_URL": database_url,
                "CELERY_BROKER_URL": broker_url,
                # Port 9 (discard) on loopback is closed: without moto, an AWS call fails at once.
                "AWS_ENDPOINT_URL": self.moto_url or "http://127.0.0.1:9",
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "eu-west-1",
                # Keeps the beat schedule, static root and filesystem broker out of the repository's var/.
                "PORTE_VAR_DIR": str(self.tmp),
            }
        )
        for key in (
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "PORTE_BROKER_ROLE_ARN",
            "PORTE_BROKER_PRINCIPAL_ARN",
        ):
            os.environ.pop(key, None)
        if self.sweep_seconds is not None:
            os.environ["PORTE_EXPIRY_SWEEP_SECONDS"] = str(self.sweep_seconds)
        if self._redis_used:
            os.environ["CACHE_URL"] = self.broker  # the benchmarks' own db, flushed before and after
        else:
            os.environ.pop("CACHE_URL", None)  # settings fall back to a file cache in PORTE_VAR_DIR
        if self.debug is not None:
            os.environ["DEBUG"] = "1" if self.debug else "0"
        if self.web_url:
            os.environ["PORTE_PUBLIC_URL"] = self.web_url

        import django
        from django.core.management import call_command

        django.setup()
        self._django_ready = True
        call_command("migrate", verbosity=0, interactive=False)

    def _lock(self) -> None:
        self._lock_file = LOCK_PATH.open("w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BenchError(
                f"another Porte benchmark is running (lock {LOCK_PATH}); they share "
                f"database {PG_DATABASE} and Redis db {REDIS_DB}"
            ) from exc

    def _database(self) -> str:
        try:
            import psycopg

            with psycopg.connect(PG_DSN, autocommit=True) as conn:
                self._pg_drop(conn)
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
                self.db_detail = str(conn.execute("SHOW server_version").fetchone()[0])
            self._pg_created = True
            self.db_engine = "postgresql"
            return f"postgres://postgres@127.0.0.1:5432/{PG_DATABASE}"
        except Exception as exc:
            path = self.tmp / "bench.sqlite3"
            self.db_engine = "sqlite"
            self.db_detail = f"{path} (PostgreSQL unavailable: {type(exc).__name__})"
            return f"sqlite:///{path}"

    @staticmethod
    def _pg_drop(conn: Any) -> None:
        try:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        except Exception:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}"')

    def _broker(self) -> str:
        try:
            import redis

            r = redis.Redis(
                host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=1, socket_connect_timeout=1
            )
            r.ping()
        except Exception as exc:
            for sub in ("broker", "broker/processed"):
                (self.tmp / sub).mkdir(parents=True, exist_ok=True)
            self.broker = f"filesystem:// in {self.tmp / 'broker'} (Redis unavailable: {type(exc).__name__})"
            return "filesystem://"
        try:
            # Another program's workers on the same db would take our tasks (and our flush would drop theirs).
            me = r.client_id()
            others = [
                c for c in r.client_list() if str(c.get("db")) == str(REDIS_DB) and c.get("id") != str(me)
            ]
            if others:
                raise BenchError(
                    f"Redis db {REDIS_DB} is in use by {len(others)} other connection(s) (e.g. a test run's "
                    f"worker); set PORTE_BENCH_REDIS_DB to a free db number or wait for it to finish"
                )
            r.flushdb()  # the benchmarks' own db: no message from an earlier run survives
        finally:
            r.close()
        self._redis_used = True
        self.broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
        return self.broker

    def _start_moto(self) -> None:
        port = free_port()
        self.moto_url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self.moto = ChildProcess(
            "moto",
            [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env,
            self.tmp / "moto.log",
        )

        def up() -> bool:
            if not self.moto or not self.moto.alive():
                raise BenchError(f"moto server exited early\n{self.moto.output() if self.moto else ''}")
            try:
                with urllib.request.urlopen(f"{self.moto_url}/moto-api/", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(
            up, timeout=30, interval=0.1, what=f"moto server on {self.moto_url}", detail=self.moto.output
        )

    def start_worker(self, *, pool: str, beat: bool, concurrency: int = 2) -> ChildProcess:
        """Start `celery -A portal worker` (and embedded beat) and wait until it says it is ready."""
        from portal.celery import app

        app.control.purge()  # nothing left over in the queue
        cmd = [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-P",
            pool,
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"bench-{os.getpid()}@%h",
        ]
        self.worker_desc = f"celery worker -P {pool}"
        if pool == "prefork":
            cmd += ["-c", str(concurrency)]
            self.worker_desc += f" -c {concurrency}"
        if beat:
            cmd += ["-B", "-s", str(self.tmp / "celerybeat-schedule")]
            self.worker_desc += (
                f" -B (expiry sweep every {os.environ.get('PORTE_EXPIRY_SWEEP_SECONDS', '2.0')} s)"
            )
        worker = self.worker = ChildProcess("worker", cmd, dict(os.environ), self.tmp / "worker.log")

        def ready() -> bool:
            if not worker.alive():
                raise BenchError(f"celery worker exited early\n{worker.output()}")
            log = _tail(worker.log_path, 10**7)
            return " ready." in log and (not beat or "beat: Starting" in log)

        wait_for(ready, timeout=60, interval=0.1, what="the celery worker to be ready", detail=worker.output)
        return worker

    def worker_output(self) -> str:
        return self.worker.output() if self.worker else "(no worker)"

    def start_web(
        self, *, workers: int = 2, threads: int = 4, access_log: Path | None = None
    ) -> ChildProcess:
        """Start gunicorn (gthread worker) serving portal.wsgi at `web_url` and wait until /health/ answers 200.
        Needs `BenchEnv(..., web=True)`. With `access_log`, gunicorn writes one line per request there: method,
        path, status and the time it spent on the request in microseconds (its %(D)s)."""
        if not self.web_url:
            raise BenchError("start_web() needs BenchEnv(..., web=True)")
        cmd = [
            PYTHON,
            "-m",
            "gunicorn",
            "portal.wsgi",
            "-b",
            f"127.0.0.1:{self.web_port}",
            "-w",
            str(workers),
            "--threads",
            str(threads),
            "--graceful-timeout",
            "5",
            "--no-control-socket",
            "--worker-tmp-dir",
            str(self.tmp),
        ]
        if access_log is not None:
            cmd += ["--access-logfile", str(access_log), "--access-logformat", "%(m)s %(U)s %(s)s %(D)s"]
        self.web_desc = f"gunicorn -w {workers} --threads {threads} at {self.web_url}"
        web = self.web = ChildProcess("web", cmd, dict(os.environ), self.tmp / "web.log")

        def up() -> bool:
            if not web.alive():
                raise BenchError(f"gunicorn exited early\n{web.output()}")
            try:
                with urllib.request.urlopen(f"{self.web_url}/health/", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(up, timeout=60, interval=0.1, what=f"gunicorn on {self.web_url}", detail=web.output)
        return web

    def web_output(self) -> str:
        return self.web.output() if self.web else "(no web server)"

    # facts -------------------------------------------------------------------------------------------------
    def print_header(self, title: str, extra: Iterable[str] = ()) -> None:
        import boto3
        import celery
        import django
        import moto
        from django.conf import settings

        load = os.getloadavg() if hasattr(os, "getloadavg") else None
        print(f"== Porte benchmark: {title} ==")
        print(
            f"  machine   : {os.cpu_count()} cores, {platform.machine()}, {platform.system()} {platform.release()}"
            + (f", load avg {load[0]:.2f}" if load else "")
        )
        print(
            f"  python    : {platform.python_version()}  django {django.get_version()}  celery {celery.__version__}"
            f"  boto3 {boto3.__version__}  moto {moto.__version__}"
        )
        print(
            f"  database  : {self.db_engine} {self.db_detail}"
            + (f" (database {PG_DATABASE}, created for this run)" if self._pg_created else "")
        )
        print(f"  broker    : {self.broker}")
        print(
            f"  cache     : {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]} "
            f"{settings.CACHES['default']['LOCATION']}"
        )
        print(f"  AWS       : {f'moto server process at {self.moto_url}' if self.aws else 'not used'}")
        print(f"  worker    : {self.worker_desc or '(not started)'}")
        if self.web_desc:
            print(f"  web       : {self.web_desc}")
        print(f"  DEBUG     : {settings.DEBUG}")
        for line in extra:
            print(f"  {line}")
        print(flush=True)

    # close -------------------------------------------------------------------------------------------------
    def close(self) -> None:
        problems: list[str] = []
        for child in (self.web, self.worker, self.moto):
            if child is not None:
                try:
                    child.stop()
                except Exception as exc:
                    problems.append(f"stopping {child.name}: {exc}")
        if self._django_ready:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            with contextlib.suppress(Exception):
                # Django's Redis cache keeps its pools open (its close() does nothing): disconnect ours, so the
                # check below does not take them for another program's.
                from django.core.cache import caches

                for cache in caches.all(initialized_only=True):
                    for pool in getattr(getattr(cache, "_cache", None), "_pools", {}).values():
                        pool.disconnect()
        if self._pg_created:
            try:
                import psycopg

                with psycopg.connect(PG_DSN, autocommit=True) as conn:
                    self._pg_drop(conn)
                self._pg_created = False
            except Exception as exc:
                problems.append(f"dropping database {PG_DATABASE}: {exc}")
        if self._redis_used:
            try:
                import redis

                if self._django_ready:
                    from portal.celery import app

                    app.pool.force_close_all()  # our own publishing connections
                r = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_timeout=1)
                me = str(r.client_id())
                if any(str(c.get("db")) == str(REDIS_DB) and c.get("id") != me for c in r.client_list()):
                    problems.append(
                        f"Redis db {REDIS_DB} not flushed: another program connected to it meanwhile"
                    )
                else:
                    r.flushdb()
                r.close()
                self._redis_used = False
            except Exception as exc:
                problems.append(f"flushing Redis db {REDIS_DB}: {exc}")
        if os.environ.get("PORTE_BENCH_KEEP_TMP"):
            print(f"(kept {self.tmp})")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if problems:
            print("clean-up problems: " + "; ".join(problems), file=sys.stderr)


def run(main: Callable[[], int]) -> None:
    """Run a benchmark's main; a BenchError is printed plainly and exits with status 2."""
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)


def dumps(value: object) -> str:
    return json.dumps(value, default=str)


# --- the Porte world the benchmarks act in (call after BenchEnv.start) ----------------------------------------


def build_roles(partner_slugs: Sequence[str], extra_role_slugs: Sequence[str] = ()) -> list[Any]:
    """Partners built like the tests' `build_partner` (dedicated moto account, boundary, provisioned `readonly`
    role), each with the extra provisioned roles named; returns every Role."""
    from datetime import timedelta

    from grants import provisioning
    from grants.services import role_setup
    from tests.fixtures.domain import READ_ONLY, build_partner

    roles = []
    for slug in partner_slugs:
        world = build_partner(slug)
        roles.append(world.role)
        for role_slug in extra_role_slugs:
            role = role_setup.role_create(
                partner=world.partner,
                slug=role_slug,
                name=role_slug.title(),
                inline_policy=READ_ONLY,
                permissions_boundary_arn=world.role.permissions_boundary_arn,
                max_duration=timedelta(hours=2),
                eligible_groups=["engineers"],
            )
            roles.append(provisioning.role_provision(role=role))
    return roles


def make_members(partner: Any, count: int, prefix: str) -> list[Any]:
    """`count` distinct partner users in the `engineers` group (one user holds one grant per role)."""
    from tests.fixtures.domain import make_member

    return [make_member(partner, f"{prefix}-{i:04d}") for i in range(count)]


def request_access(user: Any, role: Any, minutes: int = 30) -> Any:
    """An auto-approved request through the real service; returns the Grant it created (pending, task queued)."""
    from datetime import timedelta

    from approvals.services import request_create

    request = request_create(
        requester=user,
        role=role,
        duration=timedelta(minutes=minutes),
        justification="Benchmark: time-boxed read-only check",
    )
    return request.grant  # cached by Grant.objects.create(request=...): no query


def denied_now(iam: Any, role: Any) -> list[tuple[str, datetime]]:
    """(source identity, cutoff) of every deny on the role's porte-revocations policy as IAM returns it now."""
    from grants import policies
    from portal import aws

    try:
        document = iam.get_role_policy(RoleName=role.iam_name, PolicyName=policies.REVOCATIONS_POLICY_NAME)[
            "PolicyDocument"
        ]
    except aws.AwsRejected as exc:
        if exc.code == "NoSuchEntity":
            return []
        raise
    document = json.loads(document) if isinstance(document, str) else document
    denied = []
    for statement in document["Statement"]:
        names = statement["Condition"]["StringEquals"]["aws:SourceIdentity"]
        cutoff = datetime.strptime(
            statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"], "%Y-%m-%dT%H:%M:%SZ"
        )
        for identity in [names] if isinstance(names, str) else names:
            denied.append((identity, cutoff.replace(tzinfo=UTC)))
    return denied


def table_storage(table: str) -> tuple[int, list[tuple[str, int]]]:
    """PostgreSQL bytes of `table` with its indexes and TOAST, over all its partitions if it has any; and the
    parts: "rows" (heap and TOAST), then each index, largest first."""
    from django.db import connection

    with connection.cursor() as cursor:
        # pg_partition_tree lists a partitioned relation and its partitions, and nothing for a plain one.
        cursor.execute(
            "SELECT coalesce(sum(pg_total_relation_size(r)), 0) FROM (SELECT relid AS r FROM "
            "pg_partition_tree(%s::regclass) UNION SELECT %s::regclass) AS tree",
            [table, table],
        )
        total = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, (SELECT coalesce(sum(pg_relation_size(r)), 0) FROM "
            "(SELECT relid AS r FROM pg_partition_tree(i.indexrelid) UNION SELECT i.indexrelid) AS tree) AS size "
            "FROM pg_index i WHERE i.indrelid = %s::regclass ORDER BY size DESC",
            [table],
        )
        indexes = [(name, int(size)) for name, size in cursor.fetchall()]
    return total, [("rows", total - sum(size for _, size in indexes)), *indexes]
