"""Cost of the alert rules inside ingestion, and of computing the metrics figures over the ingested activity.

    .venv/bin/python bench/alert_overhead.py [--files 200] [--events 1000] [--templates 12]

The world and the log files are ingest_throughput.py's (two partners, 16 users with minted CLI and console
sessions, about one event in ten refused, one batch in ten by a non-Porte principal; files from local disk so
that S3 does not blur the figure). Measured, in this order:
1. ingestion with the rules off: the per-file selection of candidates and the per-batch hook replaced by no-ops
   (the baseline);
2. the same files again into an emptied table, with the rules on: events/s, the time spent in the per-batch hook
   (`alerts_for_batch`) and its share, and the alerts raised (the refused calls of these sessions are dense enough
   to form bursts, so the burst rule reads the database for most batches: its costly case);
3. metrics.compute() over those events (the dashboard and /metrics without the cache).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from _harness import BenchEnv, base_parser, run
from ingest_throughput import LocalTrailSource, _reset_activity, _templates, _world, _write_files


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0], default_n=200, default_pool="solo")
    parser.add_argument("--files", type=int, default=200, help="log files (default 200)")
    parser.add_argument("--events", type=int, default=1000, help="events per file (default 1000)")
    parser.add_argument("--templates", type=int, default=12, help="distinct template files (default 12)")
    args = parser.parse_args()
    with BenchEnv("alert_overhead", debug=False) as env:
        return measure(env, args)


def measure(env: BenchEnv, args: Any) -> int:
    from django.db.models import Count

    from activity import ingest as ingest_module
    from activity import loading, metrics, trail
    from activity.alerts.rules import Batch
    from activity.models import ActivityEvent, Alert, SeenSourceIp
    from activity.simulator import CloudTrailSimulator

    total = args.files * args.events
    issues = _world()
    org_id = trail.organization_id()
    assert org_id is not None
    sim = CloudTrailSimulator(org_id=org_id)
    templates = _templates(sim, issues, args.templates, args.events)
    root = env.tmp / "trail"
    _write_files(sim, templates, args.files, root, s3=False)
    local = LocalTrailSource(root, trail.logs_root(org_id))
    env.print_header(
        "alert rules in ingestion; metrics figures",
        [f"workload  : {args.files} files x {args.events} events = {total:,} events (local files)"],
    )

    hook, select = loading.alerts_for_batch, Batch.select
    spent = [0.0]

    def timed(batch: Any) -> Any:
        started = time.perf_counter()
        try:
            return hook(batch)
        finally:
            spent[0] += time.perf_counter() - started

    def ingest_all() -> float:
        started = time.perf_counter()
        report = ingest_module.ingest(local, max_objects=args.files + 10, lookback=timedelta(minutes=30))
        elapsed = time.perf_counter() - started
        assert report.events_inserted == total == ActivityEvent.objects.count(), report
        return elapsed

    loading.alerts_for_batch = lambda batch: []  # type: ignore[assignment]
    Batch.select = classmethod(lambda cls, rows, records: cls())  # type: ignore[method-assign,assignment]
    base_s = ingest_all()
    print(f"  ingest, rules off                  {total / base_s:>10,.0f} events/s   ({base_s:6.1f} s)")

    _reset_activity()
    loading.alerts_for_batch = timed  # type: ignore[assignment]
    Batch.select = select  # type: ignore[method-assign]
    rules_s = ingest_all()
    loading.alerts_for_batch = hook  # type: ignore[assignment]
    alerts = Alert.objects.count()
    print(
        f"  ingest, rules on                   {total / rules_s:>10,.0f} events/s   ({rules_s:6.1f} s)"
        f"   in rules {spent[0]:5.1f} s = {spent[0] / rules_s:.0%} of the run, "
        f"{spent[0] / args.files * 1000:.1f} ms per file"
    )
    by_rule = dict(Alert.objects.values_list("rule").annotate(n=Count("id")).values_list("rule", "n"))
    print(f"    alerts raised: {alerts} {by_rule}; seen (user, ip) pairs: {SeenSourceIp.objects.count()}")

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        figures = metrics.compute()
        timings.append(time.perf_counter() - started)
    print(
        f"  metrics.compute() over {ActivityEvent.objects.count():,} events: best of 3 {min(timings) * 1000:.0f} ms"
        f"   (refused AWS calls counted: {figures['access_denied'].total:,.0f})"
    )
    return 0


if __name__ == "__main__":
    run(main)
