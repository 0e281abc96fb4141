"""Activity ingestion throughput: events/s for ≥ 1,000,000 CloudTrail events in realistic gzipped log files, and
its ratio to a bare gunzip + JSON parse of the same files in the same run (the practical limit).

    .venv/bin/python bench/ingest_throughput.py [--files 1000] [--events 1000] [--templates 12] [--no-s3]

Set-up (every component real, see _harness.py): PostgreSQL database `porte_bench`, a moto server process, two
partners built like the tests' `build_partner` (dedicated moto accounts, provisioned role), 8 users per partner
each holding an active grant with a CLI and a console session minted through Porte's credential_mint (moto STS).

Log files: the CloudTrailSimulator builds `--templates` files of `--events` records each (Porte sessions — mint,
console sign-in, reads, writes, AccessDenied — and IAM users in the partner accounts), one account
per file. Every file written is a template whose eventIDs get the file's number as their first 8 hex digits, so
all events are unique, and whose times move on by a round of templates' minutes per round (time goes on from file
to file as in a real trail; the same times in every file would flatter the indexes); then gzip (level 6). The
files are written to a local directory in the trail's S3 layout AND uploaded to the moto trail bucket (plus a
digest per account, which ingestion must skip).

Measured, in this order:
1. bare: read each local file, gunzip, parse with orjson (Porte's parser) — and, for reference, stdlib json;
2. Porte from local files: `activity.ingest.ingest` over a directory source (the same parse / attribute /
   store / cursor code as production; only the listing and the GET differ); then the bare parse again, the
   ratios taking the mean of the two bare runs;
3. S3 GET only: every object fetched from moto (no parsing), with the same prefetch threads;
4. Porte from moto S3: `activity_ingest()` — the beat task's service, unchanged — into an emptied table;
5. replay: cursors forgotten, the same files from local again: nothing may be added. With step 4, the table was
   emptied and filled again from the S3 bucket, so the local files are files not kept yet whose events are all
   stored: each batch fails on the fast path and is loaded again on the staging path (the costly case). With
   `--no-s3`, the local files are kept already and are skipped unread.
The row count after 2 and after 4 must equal files x events.

Then the organisation's scale: 200 accounts of no partner (3 files each) added to the trail; the local ingestion
of the partners' first 150 files into an emptied table without and with their folders, in ten pairs of runs (which
side goes first alternating), the median of the pairs' CPU ratios; and the S3 ingestion of everything once more,
its S3 requests counted against the first one's: only the partners' prefixes are read, so neither may move.

Targets: CPU ratio (bare gunzip+orjson CPU per event / Porte's) >= 0.40; PostgreSQL rows and indexes <= 200
B/event; the 200 other accounts within 10 %. What the ratio compares: Porte's ingestion as deployed,
one process (the loop's thread, plus reader threads that download and decompress) and the PostgreSQL backend it
feeds, against the bare parse in one thread; no worker processes are added on either side. Both are printed with
their CPU time per event (this process's, and its PostgreSQL backend's when the server is on this machine), since
on a busy 2-core machine the rate depends on what else runs: the CPU time tells what the work itself costs.
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import BenchEnv, BenchError, base_parser, run

TARGET_CPU_RATIO = 0.40  # bare parse CPU per event / Porte's (process + PostgreSQL backend)
TARGET_BYTES_PER_EVENT = 200  # PostgreSQL rows and indexes
TARGET_ORG_CHANGE = 0.10  # 200 accounts of no partner added to the trail
# The organisation's other accounts (no partner's): their files are in the trail, and must cost nothing.
OUTSIDE_ACCOUNTS = 200
OUTSIDE_FILES = 3
# Their cost is measured in pairs of short runs (see `measure`).
ORG_PAIRS = 10
ORG_FILES = 150


class LocalTrailSource:
    """A directory laid out like the trail bucket; implements activity.trail.TrailSource."""

    def __init__(self, root: Path, logs_root: str) -> None:
        self.root, self.logs_root = root, logs_root
        self.bucket = f"file:{root}"

    def prefixes(self, accounts: Iterable[str]) -> list[str]:
        base = self.root / self.logs_root
        return sorted(
            f"{p.relative_to(self.root).as_posix()}/"
            for account in accounts
            for p in base.glob(f"{account}/CloudTrail/*")
            if p.is_dir()
        )

    def objects_after(self, prefix: str, start_after: str) -> Iterator[Any]:
        """Keys and sizes, as one S3 listing answers them (a directory walk, each entry's size from the scan)."""
        from activity.trail import TrailObject

        found: list[tuple[str, int]] = []
        pending = [self.root / prefix]
        while pending:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_dir():
                        pending.append(Path(entry.path))
                    else:
                        found.append(
                            (Path(entry.path).relative_to(self.root).as_posix(), entry.stat().st_size)
                        )
        for key, size in sorted(found):
            if key > start_after:
                yield TrailObject(key, size)

    def read(self, key: str) -> Iterator[bytes]:
        yield (self.root / key).read_bytes()


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0], default_n=1000, default_pool="solo")
    parser.add_argument("--files", type=int, default=1000, help="log files (default 1000)")
    parser.add_argument("--events", type=int, default=1000, help="events per file (default 1000)")
    parser.add_argument("--templates", type=int, default=12, help="distinct template files (default 12)")
    parser.add_argument("--no-s3", action="store_true", help="skip the moto S3 measurements")
    args = parser.parse_args()
    if args.files < args.templates or args.templates < 3:
        parser.error("need 3 <= --templates <= --files")
    with BenchEnv("ingest_throughput", debug=False) as env:
        return measure(env, args)


def _world() -> list[Any]:
    """Two partners, 8 users each with an active grant and two minted sessions (CLI, console)."""
    from _harness import build_roles, make_members

    from approvals.services import request_create
    from grants.models import CredentialIssue
    from grants.services import activation, minting

    issues = []
    for role in build_roles(["acme", "globex"]):
        for user in make_members(role.partner, 8, f"{role.partner.slug}-eng"):
            request = request_create(
                requester=user, role=role, duration=timedelta(hours=2), justification="Benchmark: activity"
            )
            grant = activation.grant_activate(grant_id=request.grant.pk)
            for kind in (CredentialIssue.Kind.CLI, CredentialIssue.Kind.CONSOLE):
                issues.append(
                    minting.credential_mint(
                        grant_id=grant.pk, user=user, kind=kind, source_ip="203.0.113.9"
                    ).issue
                )
    return issues


def _templates(sim: Any, issues: list[Any], count: int, per_file: int) -> list[tuple[str, bytes]]:
    """(account, JSON bytes) templates whose eventIDs all start with 00000000-, one account per file."""
    import orjson
    from django.utils import timezone

    by_account: dict[str, list[Any]] = {}
    for issue in issues:
        by_account.setdefault(issue.grant.role.partner.aws_account_id, []).append(issue)
    accounts = sorted(by_account)
    start = timezone.now() - timedelta(days=2)
    templates = []
    for t in range(count):
        account = accounts[t % len(accounts)]
        at = start + timedelta(minutes=t)
        records: list[dict[str, Any]] = []
        n = 0
        while len(records) < per_file:
            n += 1
            if n % 10 == 0:
                # About one in ten batches in a partner account is a non-Porte principal (flagged).
                identity = sim.iam_user_identity(account, "legacy-deployer")
                records += sim.principal_records(
                    account, identity, at=at + timedelta(seconds=n), reads=5, denied=1
                )
            else:
                issue = by_account[account][n % len(by_account[account])]
                records += sim.session_records(
                    issue, at=at + timedelta(seconds=n), reads=6, writes=2, denied=1, mint=n % 3 == 0
                )
        records = records[:per_file]
        for record in records:
            record["eventID"] = "00000000" + record["eventID"][8:]
        templates.append((account, orjson.dumps({"Records": records})))
    return templates


def _later(body: bytes, minutes: int) -> bytes:
    """The file's records `minutes` later: as CloudTrail delivers them, each round of files follows the one before
    in time (a template's times repeated in every file would have every index insert in the middle of its range)."""
    import orjson

    if not minutes:
        return body
    document = orjson.loads(body)
    shifted: dict[str, str] = {}
    for record in document["Records"]:
        at = record["eventTime"]
        if at not in shifted:
            moved = datetime.fromisoformat(at) + timedelta(minutes=minutes)
            shifted[at] = moved.strftime("%Y-%m-%dT%H:%M:%SZ")
        record["eventTime"] = shifted[at]
    return orjson.dumps(document)


def _write_files(
    sim: Any, templates: list[tuple[str, bytes]], files: int, root: Path, s3: bool
) -> tuple[int, int]:
    """Write `files` gz files (locally, and to moto S3 when `s3`): returns (bytes gz, bytes JSON)."""
    from django.utils import timezone

    from portal import aws

    client = aws.management().s3
    start = timezone.now() - timedelta(days=1)
    marker = b'"eventID":"00000000-'

    def one(i: int) -> tuple[int, int]:
        account, template = templates[i % len(templates)]
        body = _later(
            template.replace(marker, b'"eventID":"%08x-' % i), (i // len(templates)) * len(templates)
        )
        data = gzip.compress(body, compresslevel=6)
        key = sim.log_key(account, start + timedelta(minutes=i // len(templates)))
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if s3:
            client.put_object(Bucket=sim.bucket, Key=key, Body=data)
        return len(data), len(body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        sizes = list(pool.map(one, range(files)))
    if s3:
        for account in {a for a, _ in templates}:
            sim.write_digest(account, [], at=start + timedelta(hours=1))
    return sum(s[0] for s in sizes), sum(s[1] for s in sizes)


def _outside_account(n: int) -> str:
    """The account of the n-th outside file."""
    return f"{500000000000 + n // OUTSIDE_FILES:012d}"


class _S3Calls:
    """S3 requests made by Porte's AWS client while inside: counted by operation."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def _count(self, model: Any, **_: Any) -> None:
        self.counts[model.name] = self.counts.get(model.name, 0) + 1

    def __enter__(self) -> _S3Calls:
        from portal import aws

        aws.management().s3.meta.events.register("before-call.s3", self._count)
        return self

    def __exit__(self, *_: object) -> None:
        from portal import aws

        aws.management().s3.meta.events.unregister("before-call.s3", self._count)

    def text(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in sorted(self.counts.items()))


def _outside_accounts(sim: Any, templates: list[tuple[str, bytes]], root: Path, s3: bool) -> int:
    """OUTSIDE_ACCOUNTS accounts of no partner in the trail, OUTSIDE_FILES log files each (and a digest), locally
    and in moto S3 when `s3`: returns the files written."""
    from django.utils import timezone

    from portal import aws

    client = aws.management().s3
    at = timezone.now() - timedelta(hours=20)
    body = gzip.compress(templates[0][1], compresslevel=6)

    def one(n: int) -> None:
        account = _outside_account(n)
        key = sim.log_key(account, at + timedelta(minutes=n % OUTSIDE_FILES))
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        if s3:
            client.put_object(Bucket=sim.bucket, Key=key, Body=body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(one, range(OUTSIDE_ACCOUNTS * OUTSIDE_FILES)))
    return OUTSIDE_ACCOUNTS * OUTSIDE_FILES


def _bare(paths: list[Path], loads: Any) -> tuple[int, float, float]:
    """(events, seconds, CPU seconds)."""
    started, cpu = time.perf_counter(), time.process_time()
    events = 0
    for path in paths:
        events += len(loads(gzip.decompress(path.read_bytes()))["Records"])
    return events, time.perf_counter() - started, time.process_time() - cpu


class _Cpu:
    """CPU seconds used by this process and by the PostgreSQL backend of Django's connection (read from /proc, so
    only when the server runs on this machine; None otherwise)."""

    def __init__(self) -> None:
        from django.db import connection

        self.backend: int | None = None
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                self.backend = int(cursor.fetchone()[0])
        self.start = self._now()

    def _backend_seconds(self) -> float | None:
        try:
            fields = Path(f"/proc/{self.backend}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def _now(self) -> tuple[float, float | None]:
        return time.process_time(), self._backend_seconds() if self.backend else None

    def seconds(self) -> tuple[float, float | None]:
        """CPU seconds since the start: this process's, its backend's (if known)."""
        own, backend = self._now()
        if backend is None or self.start[1] is None:
            return own - self.start[0], None
        return own - self.start[0], backend - self.start[1]

    def per_event(self, events: int) -> tuple[str, float | None]:
        """(a line to print, microseconds per event of this process and its backend together, if known)."""
        own, backend = self.seconds()
        own_us = own / events * 1e6
        text = f"CPU per event: this process {own_us:.1f} us"
        if backend is None:
            return text, None
        backend_us = backend / events * 1e6
        return f"{text}, its PostgreSQL backend {backend_us:.1f} us", own_us + backend_us


def _reset_activity() -> None:
    from django.db import connection

    from activity.models import ActivityEvent, TrailCursor, TrailFile

    TrailCursor.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {ActivityEvent._meta.db_table}, {TrailFile._meta.db_table}")
        # The previous run's pages written out now, not by the checkpointer during the next timed run.
        cursor.execute("CHECKPOINT")


def measure(env: BenchEnv, args: Any) -> int:
    import orjson
    from django.db import connection

    from activity import scope, trail
    from activity.ingest import BATCH_FILES, PREFETCH, ingest
    from activity.models import ActivityEvent
    from activity.services import activity_ingest
    from activity.simulator import CloudTrailSimulator

    total = args.files * args.events
    t0 = time.perf_counter()
    issues = _world()
    org_id = trail.organization_id()
    if org_id is None:
        raise BenchError("no organisation in moto after building partners")
    sim = CloudTrailSimulator(org_id=org_id)
    sim.ensure_bucket()
    templates = _templates(sim, issues, args.templates, args.events)
    root = env.tmp / "trail"
    gz_bytes, json_bytes = _write_files(sim, templates, args.files, root, s3=not args.no_s3)
    setup_s = time.perf_counter() - t0
    paths = sorted(p for p in root.rglob("*.json.gz") if "/CloudTrail/" in p.as_posix())

    env.print_header(
        "activity ingestion throughput",
        [
            f"workload  : {args.files} files x {args.events} events = {total:,} events "
            f"({args.templates} templates, {len(issues)} minted sessions, 2 partner accounts)",
            f"files     : {gz_bytes / 1e6:.1f} MB gzipped, {json_bytes / 1e6:.1f} MB JSON "
            f"({json_bytes / max(gz_bytes, 1):.1f}x), {json_bytes / total:.0f} B/event; set-up took {setup_s:.1f} s",
            f"ingest    : {PREFETCH} reader threads; up to {BATCH_FILES} files per transaction "
            "(each file kept gzipped, its events by COPY, the cursor moved)",
        ],
    )

    bare_events, bare_s, bare_cpu = _bare(paths, orjson.loads)
    if bare_events != total:
        raise BenchError(f"bare parse saw {bare_events} events, expected {total}")
    _, stdlib_s, _ = _bare(paths, json.loads)
    bare_rate = total / bare_s
    print(
        f"  bare gunzip + orjson.loads (1 thread)      {bare_rate:>10,.0f} events/s   ({bare_s:6.1f} s)"
        f"   CPU per event {bare_cpu / total * 1e6:.1f} us"
    )
    print(
        f"  bare gunzip + json.loads  (reference)      {total / stdlib_s:>10,.0f} events/s   ({stdlib_s:6.1f} s)"
    )

    local = LocalTrailSource(root, trail.logs_root(org_id))
    cpu = _Cpu()
    started = time.perf_counter()
    accounts = scope.accounts_in_scope()

    def ingest_local(max_objects: int = args.files + 10) -> Any:
        return ingest(local, accounts=accounts, max_objects=max_objects, lookback=timedelta(minutes=30))

    report = ingest_local()
    local_s = time.perf_counter() - started
    local_cpu, local_cpu_us = cpu.per_event(total)
    rows = ActivityEvent.objects.count()
    local_rate = total / local_s
    # The bare parse again: the ratios use the mean of before and after, so a machine whose speed drifts while
    # Porte runs (a shared host's does, by a third within minutes) moves both sides alike.
    _, after_s, after_cpu = _bare(paths, orjson.loads)
    print(
        f"  bare gunzip + orjson.loads, after Porte    {total / after_s:>10,.0f} events/s   ({after_s:6.1f} s)"
        f"   CPU per event {after_cpu / total * 1e6:.1f} us (the ratios use the mean of both)"
    )
    bare_s, bare_cpu = (bare_s + after_s) / 2, (bare_cpu + after_cpu) / 2
    bare_rate = total / bare_s
    print(
        f"  Porte ingest, local files                  {local_rate:>10,.0f} events/s   ({local_s:6.1f} s)"
        f"   ratio {local_rate / bare_rate:.2f}   rows {rows:,}"
    )
    print(f"    {local_cpu}")
    bare_cpu_us = bare_cpu / total * 1e6
    if local_cpu_us:
        # The ratio of the work itself: as if Porte's process and its database ran one after the other on one
        # core, as the bare parse does. The machine's other work moves it far less than it moves the rates.
        print(
            f"    CPU-time ratio: bare {bare_cpu_us:.1f} us / Porte {local_cpu_us:.1f} us "
            f"= {bare_cpu_us / local_cpu_us:.2f}"
        )
    ok = rows == total == report.events_inserted and report.quarantined == 0
    flagged = ActivityEvent.objects.filter(flagged=True).count()
    porte = ActivityEvent.objects.filter(context__is_porte_session=True).count()
    print(f"    attributed: {porte:,} Porte sessions, {flagged:,} flagged")

    if not args.no_s3:
        from portal import aws

        s3 = aws.management().s3
        keys = [p.relative_to(root).as_posix() for p in paths]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=PREFETCH) as pool:
            fetched = sum(
                pool.map(lambda k: len(s3.get_object(Bucket=sim.bucket, Key=k)["Body"].read()), keys)
            )
        get_s = time.perf_counter() - started
        print(
            f"  moto S3 GET only ({PREFETCH} threads)              {total / get_s:>10,.0f} events/s   "
            f"({get_s:6.1f} s, {fetched / 1e6:.0f} MB)"
        )

        _reset_activity()
        cpu = _Cpu()
        with _S3Calls() as s3_calls:
            started = time.perf_counter()
            s3_report = activity_ingest(max_objects=args.files + 10)
            s3_s = time.perf_counter() - started
        s3_cpu, _ = cpu.per_event(total)
        s3_rows = ActivityEvent.objects.count()
        s3_rate = total / s3_s
        print(
            f"  Porte ingest, moto S3 (activity_ingest)    {s3_rate:>10,.0f} events/s   ({s3_s:6.1f} s)"
            f"   ratio {s3_rate / bare_rate:.2f}   rows {s3_rows:,}"
        )
        print(f"    {s3_cpu} (the moto server's own work not counted)")
        ok = ok and s3_rows == total and s3_report.not_log_files == 0 and s3_report.objects == args.files

    # The organisation's other accounts: the partners' ingestion again, with and without 200 accounts of no
    # partner in the trail (their folders moved aside and back). A shared machine's speed drifts by a third
    # within minutes, far more than the difference sought, so the comparison is made of short runs in pairs
    # (ORG_FILES files each, into an emptied table), one side right after the other, which goes first
    # alternating; each pair gives a ratio, and the median of the pairs is the figure.
    outside = _outside_accounts(sim, templates, root, s3=not args.no_s3)
    base, aside = root / local.logs_root, root / "aside"
    aside.mkdir(exist_ok=True)
    org_files = min(ORG_FILES, args.files)

    def show_outside(shown: bool) -> None:
        for n in range(OUTSIDE_ACCOUNTS):
            account = _outside_account(n * OUTSIDE_FILES)
            source, target = (aside, base) if shown else (base, aside)
            if (source / account).exists():
                (source / account).rename(target / account)

    def timed_local(shown: bool) -> tuple[float, Any]:
        show_outside(shown)
        _reset_activity()
        cpu = _Cpu()
        report = ingest_local(org_files)
        own, backend = cpu.seconds()
        return own + (backend or 0.0), report

    ratios: list[float] = []
    org_ok = True
    for pair in range(ORG_PAIRS):
        first = bool(pair % 2)
        seconds = {first: timed_local(first), not first: timed_local(not first)}
        ratios.append(seconds[True][0] / seconds[False][0])
        for _, report in seconds.values():
            org_ok = (
                org_ok and report.objects == org_files and report.events_inserted == org_files * args.events
            )
    ratios.sort()
    org_change = statistics.median(ratios) - 1
    print(
        f"  + {OUTSIDE_ACCOUNTS} accounts of no partner ({outside} files), local, {ORG_PAIRS} pairs of runs of "
        f"{org_files} files: CPU with / without, median {org_change + 1:.3f} ({org_change:+.1%}); "
        f"pairs {ratios[0]:.2f}-{ratios[-1]:.2f}"
    )
    if args.no_s3:
        # The table as step 2 left it (every file kept), for the replay.
        _reset_activity()
        ingest_local()
    else:
        _reset_activity()
        with _S3Calls() as calls:
            started = time.perf_counter()
            org_s3 = activity_ingest(max_objects=args.files + 10)
            org_s3_s = time.perf_counter() - started
        print(
            f"  + {OUTSIDE_ACCOUNTS} accounts of no partner, moto S3: {org_s3_s:6.1f} s ({org_s3_s / s3_s - 1:+.1%} "
            f"wall), S3 requests {calls.text()} against {s3_calls.text()} for the 2 partner accounts alone, "
            f"{org_s3.objects} objects read"
        )
        org_ok = org_ok and org_s3.objects == args.files and org_s3.events_inserted == total
        org_ok = org_ok and calls.counts == s3_calls.counts

    from activity.models import TrailCursor

    TrailCursor.objects.all().delete()
    started = time.perf_counter()
    replay = ingest_local()
    replay_s = time.perf_counter() - started
    final = ActivityEvent.objects.count()
    print(
        f"  replay (cursors forgotten, local files)    {total / replay_s:>10,.0f} events/s   ({replay_s:6.1f} s)"
        f"   added {replay.events_inserted}"
    )
    size, per_event = "n/a", None
    if connection.vendor == "postgresql":
        from _harness import table_storage

        from activity.models import ActivityAction, ActivityContext, TrailFile

        events_bytes, parts = table_storage(ActivityEvent._meta.db_table)
        # What events share (actions, contexts) counts too: stored for them, whatever their number.
        shared = {
            model.__name__: (table_storage(model._meta.db_table)[0], model.objects.count())
            for model in (ActivityAction, ActivityContext)
        }
        shared_bytes = sum(size for size, _ in shared.values())
        files_bytes, _ = table_storage(TrailFile._meta.db_table)
        print(
            "  storage per event (rows, then each index): "
            + ", ".join(
                f"{name.removeprefix('activity_')} {size / max(final, 1):.1f} B" for name, size in parts
            )
            + "; shared: "
            + ", ".join(
                f"{name} {count:,} rows {size / max(final, 1):.1f} B"
                for name, (size, count) in shared.items()
            )
        )
        per_event = (events_bytes + shared_bytes) / max(final, 1)
        size = (
            f"events {(events_bytes + shared_bytes) / 1e6:.0f} MB rows and indexes (with the actions and "
            f"contexts they share) = {per_event:.0f} B/event; files {files_bytes / 1e6:.0f} MB (gzipped, as "
            "delivered)"
        )
    ok = ok and replay.events_inserted == 0 and final == total and org_ok
    ratio = local_rate / bare_rate
    cpu_ratio = bare_cpu_us / local_cpu_us if local_cpu_us else None
    checks = [
        ("CPU ratio", cpu_ratio is not None and cpu_ratio >= TARGET_CPU_RATIO),
        ("storage", per_event is not None and per_event <= TARGET_BYTES_PER_EVENT),
        ("organisation scale", abs(org_change) <= TARGET_ORG_CHANGE),
        ("counts", ok),
    ]
    print()
    print(f"  final rows {final:,} (unique events {total:,}); stored: {size}")
    print(f"  load average at the end: {os.getloadavg()[0]:.2f} (2 cores: above ~1 other work competes)")
    print(
        f"  RESULT: Porte ingest (1 process + its PostgreSQL backend) {local_rate:,.0f} events/s from local files; "
        f"bare gunzip + orjson (1 thread) {bare_rate:,.0f} events/s -> wall ratio {ratio:.2f}, CPU ratio "
        f"{f'{cpu_ratio:.2f}' if cpu_ratio else 'n/a'} (target >= {TARGET_CPU_RATIO}); "
        f"{f'{per_event:.0f}' if per_event else 'n/a'} B/event (target <= {TARGET_BYTES_PER_EVENT}); "
        f"{OUTSIDE_ACCOUNTS} other accounts {org_change:+.1%} (target within {TARGET_ORG_CHANGE:.0%}) -> "
        + ", ".join(f"{name} {'PASS' if passed else 'FAIL'}" for name, passed in checks)
    )
    return 0 if all(passed for _, passed in checks) else 1


if __name__ == "__main__":
    run(main)
