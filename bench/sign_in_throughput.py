"""Sign-in throughput: partner users completing OIDC sign-ins through Porte's web server and their own IdP.

    .venv/bin/python bench/sign_in_throughput.py [--users 200] [--threads 4] [--workers 2] [--worker-threads 4]

Set-up: partner `acme` (no AWS: `build_partner(..., provision=False)`) whose IdP is a real oidc-provider (Node) on a
free loopback port, with --users distinct users (`user0001`, sub `acme-0001`, `@acme.example`, group `engineers`)
and one client whose redirect_uri is Porte's callback. Porte runs as a separate gunicorn process (gthread, DEBUG
off, cache in the benchmarks' Redis db).

A sign-in is a fresh `requests.Session` (a new browser) doing what a person does, until Porte's dashboard:
  Porte  GET + POST /accounts/oidc/acme/login/     (allauth's confirmation page; the POST redirects to the IdP)
  IdP    /auth -> login page -> login form posted -> consent (automatic) -> redirect to Porte's callback
  Porte  GET the callback (code exchange, ID token checks, JIT user or sign-in record, session) -> GET / (200)
Each HTTP exchange is timed on its own (redirects are followed one hop at a time, the body read included) and
classed by host:port as Porte or IdP; the rest of a sign-in's time is this client's own (HTML parsing,
`requests`). Porte's hops include the calls Porte itself makes to the IdP (discovery, token endpoint, JWKS).

Runs: the first half of the users sign in one after the other, the second half from --threads threads at once;
each user for the first time (JIT: user, social account, membership created), then again (repeat: existing user,
sign-in recorded). First-time and repeat sign-ins alternate in chunks (--chunk users sign in for the first time,
then the same users again, then the next chunk), so that both kinds see the same machine load; a kind's rate is
its sign-ins over the time its chunks took. A few warm-up sign-ins (other users, not counted) come first.

Then, unless --profile 0, more users sign in with Porte served in this process (Django's test client on the same
database, cache and IdP) to show where Porte's time goes: its calls to the IdP, SQL, and the rest (Python), per
hop, and a cProfile of the callback view.

Figures only; no assertion.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import re
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import requests
from _harness import REPO_ROOT, BenchEnv, BenchError, fmt_ms, percentile, print_row, run
from requests.adapters import HTTPAdapter

PROVIDER_ID = "acme"
CLIENT_SECRET = "acme-bench-client-secret"
TIMEOUT_S = 30.0  # per HTTP exchange: a hung server fails the run instead of stalling it
# A path segment this long made of token characters is an id (interaction uid, ...): one label for all of them.
_ID_SEGMENT = re.compile(r"/(?!openid-configuration)[A-Za-z0-9_-]{16,}(?=/|$)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--users", type=int, default=200, help="distinct users, split in halves (default 200)"
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="client threads in the concurrent runs (default 4)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--worker-threads", type=int, default=4, help="threads per gunicorn worker (default 4)"
    )
    parser.add_argument("--warmup", type=int, default=8, help="uncounted sign-ins first (default 8)")
    parser.add_argument(
        "--chunk",
        type=int,
        default=10,
        help="users per first-time/repeat alternation (default 10; concurrent: at least 10 per thread)",
    )
    parser.add_argument(
        "--profile", type=int, default=10, help="users per in-process profiling pass (default 10; 0: none)"
    )
    args = parser.parse_args()
    if args.users < 2 or args.threads < 1 or args.chunk < 1 or args.warmup < 0 or args.profile < 0:
        parser.error("--users must be >= 2, --threads and --chunk >= 1, --warmup and --profile >= 0")

    with BenchEnv("sign_in_throughput", aws=False, web=True, debug=False) as env:
        return measure(env, args)


# --- people --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    sub: str


def people(prefix: str, count: int, sub_prefix: str) -> list[Person]:
    return [
        Person(f"{prefix}{i:04d}", f"{prefix}-pw-{i:04d}", f"{sub_prefix}{i:04d}")
        for i in range(1, count + 1)
    ]


def oidc_users(persons: Sequence[Person]) -> list[Any]:
    from tests.peers.oidc_idp import OidcUser

    return [
        OidcUser(
            username=p.username,
            password=p.password,
            sub=p.sub,
            email=f"{p.username}@acme.example",
            name=f"User {p.username[-4:]}",
            groups=["engineers"],
            amr=["pwd", "otp"],
            acr="urn:porte:mfa",
        )
        for p in persons
    ]


# --- a timed browser -----------------------------------------------------------------------------------------


@dataclass
class Hop:
    side: str  # "porte" or "idp"
    label: str  # method and path, ids folded
    seconds: float


@dataclass
class SignIn:
    person: Person
    total: float = 0.0
    hops: list[Hop] = field(default_factory=list)

    def side(self, side: str) -> float:
        return sum(h.seconds for h in self.hops if h.side == side)


def settled_size(access_log: Any) -> int:
    """The access log's size once gunicorn has stopped adding to it (earlier requests are logged just after they
    are answered)."""
    size = -1
    while size != (size := access_log.stat().st_size):
        time.sleep(0.05)
    return size


def served_requests(access_log: Any, start: int, count: int) -> list[tuple[str, float]]:
    """gunicorn's access log from `start` on, once it holds `count` lines (gunicorn logs a request just after
    answering it): (method and path, its time on the request in seconds) per line."""
    deadline = time.monotonic() + 5
    while True:
        with open(access_log, encoding="utf-8") as log:
            log.seek(start)
            lines = [line.split() for line in log.read().splitlines()]
        if len(lines) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if len(lines) != count:
        raise BenchError(f"gunicorn logged {len(lines)} requests where the sign-ins made {count}")
    return [(hop_label(method, path), int(micros) / 1e6) for method, path, _status, micros in lines]


def hop_label(method: str, url: str) -> str:
    return f"{method:<4} {_ID_SEGMENT.sub('/<id>', urlsplit(url).path)}"


class TimedAdapter(HTTPAdapter):
    """Times every HTTP exchange (one per hop: `requests` follows redirects by sending each one through here),
    from sending the request to having the whole body, and classes it by host:port."""

    def __init__(self, origins: dict[tuple[str | None, int | None], str], hops: list[Hop]) -> None:
        super().__init__(max_retries=0)
        self.origins, self.hops = origins, hops

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        side = self.origins.get((parts.hostname, parts.port))
        if side is None:
            raise BenchError(f"a sign-in left Porte and its IdP: {request.method} {request.url}")
        kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT_S
        t0 = time.perf_counter()
        response = super().send(request, **kwargs)
        _ = response.content
        self.hops.append(
            Hop(side, hop_label(request.method or "", request.url or ""), time.perf_counter() - t0)
        )
        return response


# --- the benchmark -------------------------------------------------------------------------------------------


def measure(env: BenchEnv, args: Any) -> int:
    from tests.fixtures.domain import build_partner
    from tests.fixtures.peers import running_idp

    half = args.users // 2
    users = people("user", args.users, "acme-")
    warm = people("warm", args.warmup, "acme-warm-")
    prof = people("prof", 2 * args.profile + 1 if args.profile else 0, "acme-prof-")
    redirect_uri = f"{env.web_url}/accounts/oidc/{PROVIDER_ID}/login/callback/"
    client = {
        "client_id": f"porte-{PROVIDER_ID}",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [redirect_uri],
    }

    t_setup = time.perf_counter()
    idp = running_idp([client], oidc_users(users + warm + prof), title="Acme Corp sign-in")
    try:
        world = build_partner(PROVIDER_ID, issuer=idp.issuer, client_secret=CLIENT_SECRET, provision=False)
        access_log = env.tmp / "access.log"
        env.start_web(workers=args.workers, threads=args.worker_threads, access_log=access_log)
        setup_s = time.perf_counter() - t_setup
        bench = Bench(env, idp, world.partner, access_log)
        return bench.run_all(args, users[:half], users[half:], warm, prof, setup_s)
    finally:
        idp.stop()


class Bench:
    def __init__(self, env: BenchEnv, idp: Any, partner: Any, access_log: Any) -> None:
        self.env, self.idp, self.partner, self.access_log = env, idp, partner, access_log
        # gunicorn's own time on each Porte request of the sequential runs, by kind, in the order made.
        self.served: dict[str, list[tuple[str, float]]] = defaultdict(list)
        porte = urlsplit(env.web_url)
        issuer = urlsplit(idp.issuer)
        self.origins = {(porte.hostname, porte.port): "porte", (issuer.hostname, issuer.port): "idp"}
        self.home = f"{env.web_url}/"

    # one sign-in ----------------------------------------------------------------------------------------------
    def sign_in(self, person: Person) -> SignIn:
        from tests.helpers import begin_oidc_sign_in
        from tests.peers.oidc_idp import sign_in

        result = SignIn(person)
        with requests.Session() as http:
            http.mount("http://", TimedAdapter(self.origins, result.hops))
            t0 = time.perf_counter()
            try:
                start = begin_oidc_sign_in(http, self.env.web_url, PROVIDER_ID)
                final = sign_in(http, start, person.username, person.password)
            except Exception as exc:
                raise BenchError(f"sign-in of {person.username} failed: {exc!r}\n{self._logs()}") from exc
            result.total = time.perf_counter() - t0
        if final.status_code != 200 or final.url != self.home:
            raise BenchError(
                f"sign-in of {person.username} ended at {final.url} with HTTP {final.status_code}, not at the "
                f"dashboard\n{final.text[:600]}\n{self._logs()}"
            )
        return result

    def _logs(self) -> str:
        return f"{self.env.web_output()}\n--- IdP log ---\n{self.idp.log()[-2000:]}"

    # runs -------------------------------------------------------------------------------------------------
    def sequential(self, persons: Sequence[Person]) -> tuple[list[SignIn], float]:
        t0 = time.perf_counter()
        results = [self.sign_in(p) for p in persons]
        return results, time.perf_counter() - t0

    def concurrent(self, persons: Sequence[Person], threads: int) -> tuple[list[SignIn], float]:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sign-in") as pool:
            results = list(pool.map(self.sign_in, persons))
        return results, time.perf_counter() - t0

    def alternating(self, persons: Sequence[Person], threads: int, chunk: int) -> list[Run]:
        """First-time and repeat sign-ins in alternating chunks (a chunk of users signs in for the first time, then
        again), so that both kinds see the same machine load; each kind's rate is its sign-ins over the time its
        chunks took."""
        kinds = ("first-time", "repeat")
        results: dict[str, list[SignIn]] = {kind: [] for kind in kinds}
        wall = dict.fromkeys(kinds, 0.0)
        load = os.getloadavg()[0]
        for start in range(0, len(persons), chunk):
            part = persons[start : start + chunk]
            for kind in kinds:
                start = settled_size(self.access_log)
                done, seconds = self.sequential(part) if threads == 1 else self.concurrent(part, threads)
                results[kind] += done
                wall[kind] += seconds
                if threads == 1:
                    porte_hops = sum(h.side == "porte" for r in done for h in r.hops)
                    self.served[kind] += served_requests(self.access_log, start, porte_hops)
        loads = (load, os.getloadavg()[0])
        title = "sequential" if threads == 1 else f"{threads} threads"
        size = min(chunk, len(persons))
        return [
            Run(f"{title}, {kind}", kind, threads, results[kind], wall[kind], size, loads) for kind in kinds
        ]

    def run_all(
        self,
        args: Any,
        first: Sequence[Person],
        second: Sequence[Person],
        warm: Sequence[Person],
        prof: Sequence[Person],
        setup_s: float,
    ) -> int:
        from partners.models import Membership
        from portal.models import AuditEvent

        t_run = time.perf_counter()
        load_before = os.getloadavg()[0]
        if warm:
            self.concurrent(warm, args.threads)
        runs = [
            *self.alternating(first, 1, args.chunk),
            *self.alternating(second, args.threads, max(args.chunk, 10 * args.threads)),
        ]
        run_s = time.perf_counter() - t_run

        profile = Profiler(self, args.profile).run(prof) if args.profile else None

        members = Membership.objects.filter(partner=self.partner).count()
        refused = AuditEvent.objects.filter(action="signin.refused").count()
        expected = len(first) + len(second) + len(warm) + len(prof)
        if members != expected or refused:
            raise BenchError(f"{members} memberships (expected {expected}), {refused} refused sign-ins")

        import gunicorn

        self.env.print_header(
            "sign-in throughput (OIDC, allauth + Porte's hardening, real IdP)",
            [
                f"IdP       : oidc-provider (Node) at {self.idp.issuer}, {len(first) + len(second)} users "
                f"(+{len(warm)} warm-up, +{len(prof)} profiling), automatic consent",
                f"gunicorn  : {gunicorn.__version__}; client: requests {requests.__version__}, one fresh "
                f"Session per sign-in",
                f"users     : {len(first)} sequential + {len(second)} concurrent ({args.threads} threads), "
                f"each twice (first-time, then repeat, in alternating chunks); {len(warm)} warm-up sign-ins "
                "not counted",
                f"load      : 1-min load average {load_before:.2f} before the runs (this machine is shared: other "
                f"programs' load inflates the times; each run shows its own)",
                f"set-up    : {setup_s:.1f} s (IdP, partner, gunicorn); runs {run_s:.1f} s; "
                f"{members} memberships in the end, {refused} refused sign-ins",
            ],
        )
        for r in runs:
            r.print()
        print_summary(runs)
        print_hops(runs)
        if profile is not None:
            profile.print()
            print_targets(runs, profile, self.served.get("repeat", []))
        print_notes(runs)
        return 0


# --- figures -------------------------------------------------------------------------------------------------


@dataclass
class Run:
    title: str
    kind: str
    threads: int
    results: list[SignIn]
    wall: float
    chunk: int
    load: tuple[float, float]  # 1-min load average at the start and the end

    @property
    def short(self) -> str:
        return f"{'seq' if self.threads == 1 else f'{self.threads} thr'} {self.kind}"

    @property
    def rate(self) -> float:
        return len(self.results) / self.wall

    def share(self, side: str) -> float:
        return sum(r.side(side) for r in self.results) / sum(r.total for r in self.results)

    def latencies(self) -> list[float]:
        return [r.total for r in self.results]

    def print(self) -> None:
        print(
            f"{self.title}: {len(self.results)} sign-ins in {self.wall:.2f} s = {self.rate:.1f} sign-ins/s"
            f"   (chunks of {self.chunk}; load avg {self.load[0]:.2f} -> {self.load[1]:.2f})"
        )
        print_row("per sign-in (start -> dashboard 200)", self.latencies())
        print_row("  in Porte (sum of Porte hops)", [r.side("porte") for r in self.results])
        print_row("  in the IdP (sum of IdP hops)", [r.side("idp") for r in self.results])
        porte, idp = self.share("porte"), self.share("idp")
        print(
            f"  share of sign-in time: Porte {porte:5.1%}   IdP {idp:5.1%}   client {1 - porte - idp:5.1%}"
            f"   ({len(self.results[0].hops)} HTTP exchanges per sign-in)"
        )
        print()


def print_summary(runs: Sequence[Run]) -> None:
    print("Summary")
    print(f"  {'run':<26} {'sign-ins/s':>10} {'p50':>11} {'p95':>11} {'Porte':>7} {'IdP':>7}")
    for r in runs:
        lat = r.latencies()
        print(
            f"  {r.title:<26} {r.rate:>10.1f} {fmt_ms(percentile(lat, 50))} {fmt_ms(percentile(lat, 95))}"
            f" {r.share('porte'):>7.1%} {r.share('idp'):>7.1%}"
        )
    by = {(r.kind, r.threads): r for r in runs}
    for threads in sorted({r.threads for r in runs}):
        first, repeat = by.get(("first-time", threads)), by.get(("repeat", threads))
        if first and repeat:
            d = percentile(first.latencies(), 50) - percentile(repeat.latencies(), 50)
            print(
                f"  first-time vs repeat ({threads} thread{'s' if threads > 1 else ''}): p50 "
                f"{d * 1000:+.1f} ms, throughput {first.rate:.1f} vs {repeat.rate:.1f} sign-ins/s"
            )
    print()


def print_hops(runs: Sequence[Run]) -> None:
    """Median time of each kind of HTTP exchange, per run (the Porte callback is where JIT creation shows)."""
    labels: dict[tuple[str, str], None] = {}
    for r in runs:
        for h in r.results[0].hops:
            labels.setdefault((h.side, h.label), None)
    print("Per hop: p50 of each HTTP exchange, in the order a sign-in makes them")
    header = "".join(f"{r.short:>18}" for r in runs)
    print(f"  {'':<5} {'exchange':<52}{header}")
    for side, label in labels:
        cells = []
        for r in runs:
            values = [h.seconds for res in r.results for h in res.hops if (h.side, h.label) == (side, label)]
            cells.append(f"{fmt_ms(percentile(values, 50)) if values else '-':>18}")
        print(f"  {side:<5} {label[:52]:<52}{''.join(cells)}")
    print()


def print_targets(runs: Sequence[Run], profile: Profiler, served: Sequence[tuple[str, float]]) -> None:
    """A repeat sign-in's cost as its targets count it: the sign-in is the login page, its POST and the callback,
    up to the redirect to the dashboard; the dashboard is counted apart. Porte's own time is its hops less the
    time it waits on the IdP's token endpoint (measured in this process, where Porte's calls are timed)."""
    seq = next((r for r in runs if r.threads == 1 and r.kind == "repeat"), None)
    profiled = profile.hops.get("repeat", [])
    if seq is None or not profiled or not served:
        return
    sign_in = [h for h in profiled if "dashboard" not in h.label]
    dashboard = [h for h in profiled if "dashboard" in h.label]
    waiting = med([sum(seconds for _, seconds in h.outbound) for h in sign_in if "callback" in h.label])
    exchanged = med(
        [sum(h.seconds for h in r.hops if h.side == "porte" and h.label != "GET  /") for r in seq.results]
    )
    with_dashboard = med([r.side("porte") for r in seq.results])
    in_process = sum(
        med([h.total - sum(seconds for _, seconds in h.outbound) for h in sign_in if h.label == label])
        for label in dict.fromkeys(h.label for h in sign_in)
    )
    count = profile.count
    calls = Counter(label.split()[-1] for h in sign_in for label, _ in h.outbound)
    print("Against the targets: a repeat sign-in (login page, POST, callback), sequential")
    # Each sequential sign-in makes four requests to Porte, in order; the dashboard is the fourth.
    in_gunicorn = med([sum(s for _, s in served[i : i + 3]) for i in range(0, len(served), 4)])
    print(
        f"  Porte's own time : {fmt_ms(in_gunicorn - waiting).strip()} p50 as gunicorn times its requests "
        f"({fmt_ms(in_gunicorn).strip()}, less {fmt_ms(waiting).strip()} waiting on the IdP's token endpoint); "
        f"{fmt_ms(exchanged - waiting).strip()} as this client times its exchanges with Porte (HTTP client included); "
        f"{fmt_ms(in_process).strip()} in this process"
    )
    print(
        f"  SQL round trips  : {sum(h.queries for h in sign_in) / count:.0f} per sign-in (BEGIN and COMMIT "
        f"counted); the dashboard {sum(h.queries for h in dashboard) / count:.0f}"
    )
    print(
        f"  calls to the IdP : {sum(calls.values()) / count:g} per sign-in"
        f" ({', '.join(f'{label} x{n / count:g}' for label, n in calls.items()) or 'none'})"
    )
    print(f"  with the dashboard: Porte's hops {fmt_ms(with_dashboard).strip()} p50 under gunicorn")
    print()


def print_notes(runs: Sequence[Run]) -> None:
    seq = [r for r in runs if r.threads == 1]
    par = [r for r in runs if r.threads > 1]
    print("Notes")
    if seq:
        porte = sum(r.share("porte") for r in seq) / len(seq)
        print(
            f"  - Porte's hops are {porte:.0%} of a sequential sign-in. They include the calls Porte makes to the "
            "IdP while it answers (discovery on the login POST; discovery, token and JWKS in the callback); "
            "'IdP' is the browser's hops to the IdP only, 'client' this process (requests, HTML parsing)."
        )
    if seq and par:
        speedup = sum(r.rate for r in par) / sum(r.rate for r in seq)
        print(
            f"  - {par[0].threads} client threads reach {speedup:.1f}x the sequential rate: these threads, gunicorn's "
            f"worker threads, PostgreSQL, Redis and the IdP all share {os.cpu_count()} cores, so the concurrent "
            "figures are what this machine can do, not Porte alone."
        )
    print("  - DEBUG is off in gunicorn and in this process (no query log, as in production).")


# --- where Porte's time goes (in process) --------------------------------------------------------------------


@dataclass
class PorteHop:
    label: str
    total: float
    outbound: list[tuple[str, float]]  # Porte's own HTTP calls (to the IdP): label, seconds
    queries: int
    sql: float


def med(values: Sequence[float]) -> float:
    return percentile(values, 50)


class Profiler:
    """Signs users in with Porte served in this process (Django test client; the same database, cache and IdP;
    Host is Porte's public host, so redirect_uri is the registered one) and the IdP hops over HTTP.

    One uncounted sign-in warms this process up. Then each user signs in for the first time, then again at once
    (repeat). The first --profile users are timed (each Porte hop, with its outbound calls and SQL); the next
    --profile users run with cProfile on the callback view (cProfile slows Python code down: the timed users give
    the times, the profiled ones only the shape)."""

    def __init__(self, bench: Bench, count: int) -> None:
        self.bench, self.count = bench, count
        self.hops: dict[str, list[PorteHop]] = defaultdict(list)  # pass name -> Porte hops
        self.profiles: dict[str, cProfile.Profile] = {}

    def run(self, persons: Sequence[Person]) -> Profiler:
        warm, timed, profiled = persons[0], persons[1 : self.count + 1], persons[self.count + 1 :]
        self.sign_in(warm, "warm-up", None)  # this process's first requests load the URLconf, templates...
        del self.hops["warm-up"]
        for group, profile in ((timed, False), (profiled, True)):
            for person in group:
                for name in ("first-time", "repeat"):  # back to back: both see the same machine load
                    prof = self.profiles.setdefault(name, cProfile.Profile()) if profile else None
                    try:
                        self.sign_in(person, name, prof)
                    except BenchError:
                        raise
                    except Exception as exc:
                        where = "".join(traceback.format_exception(exc, limit=-3))
                        raise BenchError(f"in-process sign-in of {person.username} raised:\n{where}") from exc
        return self

    @contextmanager
    def _outbound(self, calls: list[tuple[str, float]]) -> Iterator[None]:
        original = HTTPAdapter.send

        def send(adapter: HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            t0 = time.perf_counter()
            try:
                return original(adapter, request, **kwargs)
            finally:
                calls.append((hop_label(request.method or "", request.url or ""), time.perf_counter() - t0))

        with mock.patch.object(HTTPAdapter, "send", send):
            yield

    def _porte(
        self,
        label: str,
        call: Callable[[], Any],
        name: str,
        profile: cProfile.Profile | None,
    ) -> Any:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        if profile is not None:  # a profiled sign-in: cProfile on the callback only, nothing else measured
            return profile.runcall(call) if "callback" in label else call()
        calls: list[tuple[str, float]] = []
        with self._outbound(calls), CaptureQueriesContext(connection) as queries:
            t0 = time.perf_counter()
            response = call()
            total = time.perf_counter() - t0
        sql = sum(float(q["time"]) for q in queries.captured_queries)
        self.hops[name].append(PorteHop(label, total, calls, len(queries.captured_queries), sql))
        return response

    def sign_in(self, person: Person, name: str, profile: cProfile.Profile | None) -> None:
        from django.test import Client

        from tests.peers.oidc_idp import sign_in

        env = self.bench.env
        host = urlsplit(env.web_url).netloc
        porte = Client(HTTP_HOST=host)
        login = f"/accounts/oidc/{PROVIDER_ID}/login/"

        def check(response: Any, status: int, what: str) -> Any:
            if response.status_code != status:
                body = response.content[:600].decode(errors="replace")
                raise BenchError(
                    f"in-process {what} of {person.username}: HTTP {response.status_code}\n{body}"
                )
            return response

        check(self._porte("GET  login page", lambda: porte.get(login), name, profile), 200, "login page")
        form = {"csrfmiddlewaretoken": porte.cookies["csrftoken"].value}
        to_idp = check(
            self._porte("POST login (to IdP)", lambda: porte.post(login, form), name, profile),
            302,
            "login POST",
        )
        with requests.Session() as http:
            http.mount("http://", TimedAdapter(self.bench.origins, []))  # for its timeout
            back = sign_in(http, to_idp["Location"], person.username, person.password, follow_callback=False)
        if not back.is_redirect:
            raise BenchError(
                f"in-process sign-in of {person.username}: the IdP did not redirect back\n{back.text}"
            )
        callback = urlsplit(back.headers["Location"])
        path = f"{callback.path}?{callback.query}"
        done = check(self._porte("GET  callback", lambda: porte.get(path), name, profile), 302, "callback")
        if done["Location"] != "/":
            raise BenchError(f"in-process callback of {person.username} redirected to {done['Location']}")
        check(self._porte("GET  / (dashboard)", lambda: porte.get("/"), name, profile), 200, "dashboard")

    def print(self) -> None:
        print(
            f"Where Porte's time goes: in this process (Django test client, no gunicorn), {self.count} users, "
            "medians per hop"
        )
        print(
            f"  {'pass':<11} {'Porte hop':<20} {'total':>11} {'to IdP':>11} {'SQL':>11} {'rest':>11}"
            f"  {'queries':>7}  Porte's calls to the IdP"
        )
        for name, hops in self.hops.items():
            by_label: dict[str, list[PorteHop]] = defaultdict(list)
            for h in hops:
                by_label[h.label].append(h)
            for label, group in by_label.items():
                total = med([h.total for h in group])
                out = med([sum(s for _, s in h.outbound) for h in group])
                sql = med([h.sql for h in group])
                by_call: dict[str, list[float]] = defaultdict(list)
                for h in group:
                    for lbl, seconds in h.outbound:
                        by_call[lbl.split()[-1]].append(seconds)
                calls = ", ".join(
                    f"{lbl} x{len(v) / len(group):g} {fmt_ms(med(v)).strip()}" for lbl, v in by_call.items()
                )
                print(
                    f"  {name:<11} {label:<20} {fmt_ms(total)} {fmt_ms(out)} {fmt_ms(sql)} "
                    f"{fmt_ms(total - out - sql)}  {med([h.queries for h in group]):>7.0f}  {calls or '-'}"
                )
        for name, hops in self.hops.items():
            per_sign_in = sum(h.queries for h in hops) / self.count
            calls = sum(len(h.outbound) for h in hops) / self.count
            print(
                f"  {name}: {per_sign_in:.0f} SQL queries and {calls:.0f} calls to the IdP per sign-in (Porte side)"
            )
        for name, prof in self.profiles.items():
            print(
                f"\n  cProfile of the callback view, {name} ({self.count} other users; times inflated by cProfile):"
            )
            print(_top(prof, self.count, 16))
        print()


# Porte's code, allauth, and the few library calls that stand for I/O or crypto; not Django's ORM internals.
_INTERESTING = re.compile(
    r"/(partners|portal|grants|allauth)/|/jwt/api_jwt\.py|/requests/sessions\.py|/cryptography/fernet\.py"
    r"|/django/db/backends/utils\.py|/django/contrib/(auth|sessions)/"
)
_WRAPPER = re.compile(r"/middleware\.py$|/allauth/socialaccount/providers/oauth2/views\.py$")


def _top(prof: cProfile.Profile, sign_ins: int, limit: int) -> str:
    """The callback view and what it spends its time in, per sign-in, by cumulative time."""
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (filename, line, func), (_cc, ncalls, _tt, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if _INTERESTING.search(filename) and not (
            filename.endswith("/db/backends/utils.py") and func != "execute"
        ):
            short = filename.removeprefix(f"{REPO_ROOT}/").rsplit("/site-packages/", 1)[-1]
            rows.append((cumtime, ncalls, f"{short}:{line}({func})", filename))
    view = max(
        (r[0] for r in rows if r[2].startswith("partners/oidc.py") and r[2].endswith("(callback)")), default=0
    )
    shown = [
        r
        for r in sorted(rows, reverse=True)
        if r[0] <= view and not (_WRAPPER.search(r[3]) and r[0] > 0.9 * view)
    ]
    lines = [f"    {'cum/sign-in':>11} {'share':>6} {'calls/sign-in':>13}  function"]
    for cumtime, ncalls, name, _ in shown[:limit]:
        share = cumtime / view if view else 0.0
        lines.append(
            f"    {cumtime * 1000 / sign_ins:8.1f} ms {share:6.1%} {ncalls / sign_ins:13.1f}  {name}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    run(main)
