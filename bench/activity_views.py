"""Activity views under load: p50/p95 latency of the activity pages, API and exports over ≥ 5,000,000 events,
each a full request through Django's test Client (middleware, session, scoping, query, template rendering).

    .venv/bin/python bench/activity_views.py [--events 5000000] [--n 40]

Set-up (see _harness.py; its own PostgreSQL database `porte_bench_views`, no moto: the views call no AWS):
5 partners, 80 people each (one a partner admin), 4,000 grants (8 per person, most long expired), 100 stored
trail files of 1,000 records for the detail page. The events are generated in the database by one
`INSERT ... SELECT ... FROM generate_series` (the indexes dropped while loading and built after, then ANALYZE):
30 days of activity; grants and services skewed (a few busy, a long tail); 40 services with 3 calls each,
two of them read-only (2/3 of the calls read); ~3 % errors; 5 % calls by non-Porte principals in partner accounts
(flagged), 2 % in an account of no partner.

Measured (`--n` requests each, parameters varied across requests so the cache does not serve one row set):
staff all, partner admin (organisation), partner user (own), and, as a partner admin, by grant, by service, by
event name, errors only, writes, a two-hour time range; staff by service and by event name (no partner to narrow
by); page 50 of the staff list by keyset; the event detail page (record read from its gzipped file); the API list;
the CSV and JSON exports up to their first chunk (the first 500 rows: an export streams the rest).
Target: p95 ≤ 100 ms for every view. Apart from it, the far end of the long tail: a service and a call made
once in 5,000.
Prints figures, asserts none.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlencode

import _harness
from _harness import BenchEnv, BenchError, base_parser, percentile, print_row, run

_harness.PG_DATABASE = "porte_bench_views"  # its own database: never the one the other benchmarks use

TARGET_P95_S = 0.100
PARTNERS = ["acme", "globex", "initech", "umbrella", "hooli"]
PEOPLE_PER_PARTNER = 80
GRANTS_PER_PERSON = 8
FILES, RECORDS_PER_FILE = 100, 1000
OUTSIDE_ACCOUNT = "999988887777"
SERVICES = [
    "ec2", "s3", "iam", "sts", "ssm", "logs", "cloudwatch", "lambda", "dynamodb", "rds", "kms", "secretsmanager",
    "ecs", "ecr", "eks", "elasticloadbalancing", "autoscaling", "cloudformation", "sns", "sqs", "events",
    "route53", "acm", "apigateway", "cloudfront", "glue", "athena", "kinesis", "firehose", "elasticache",
    "es", "redshift", "backup", "config", "guardduty", "securityhub", "organizations", "codebuild",
    "codepipeline", "states",
]  # fmt: skip
VERBS = [("Describe", True), ("List", True), ("Update", False)]
# One call in 5,000 (0.02 %): the far end of the long tail, measured apart from the target (see below).
RARE_SOURCE, RARE_NAME, RARE_EVERY = "macie2.amazonaws.com", "GetMacieFindings", 5000


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0], default_n=40, default_pool="solo")
    parser.add_argument("--events", type=int, default=5_000_000, help="events to load (default 5,000,000)")
    args = parser.parse_args()
    if args.events < 100_000:
        parser.error("--events: at least 100,000")
    with BenchEnv("activity_views", aws=False, debug=False) as env:
        return measure(env, args)


# --- the world --------------------------------------------------------------------------------------------------


def _world() -> dict[str, Any]:
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from grants.models import AccessRequest, Grant
    from partners.models import Membership, Partner
    from portal.models import User
    from tests.fixtures.domain import build_partner, make_staff

    now = timezone.now()
    people: list[User] = []
    admins: list[User] = []
    grants: list[Grant] = []
    for p, slug in enumerate(PARTNERS):
        world = build_partner(slug, provision=False)
        Partner.objects.filter(pk=world.partner.pk).update(aws_account_id=f"{100000000000 + p:012d}")
        users = User.objects.bulk_create(
            [
                User(
                    username=f"{slug}-{i:03d}",
                    email=f"{slug}-{i:03d}@{slug}.example",
                    password=make_password(None),
                )
                for i in range(PEOPLE_PER_PARTNER)
            ]
        )
        idp = world.partner.identity_providers.first()  # signed in through it: in standing
        Membership.objects.bulk_create(
            [
                Membership(
                    user=u,
                    partner=world.partner,
                    identity_provider=idp,
                    groups=["engineers"],
                    is_partner_admin=i == 0,
                )
                for i, u in enumerate(users)
            ]
        )
        admins.append(users[0])
        people += users
        requests = AccessRequest.objects.bulk_create(
            [
                AccessRequest(
                    requester=u,
                    role=world.role,
                    justification=f"Benchmark ticket {n}",
                    requested_duration=timedelta(hours=1),
                    status=AccessRequest.Status.APPROVED,
                    created_at=now - timedelta(days=30 - n * 4),
                )
                for u in users
                for n in range(GRANTS_PER_PERSON)
            ]
        )
        grants += Grant.objects.bulk_create(
            [
                Grant(
                    request=r,
                    user=r.requester,
                    role=world.role,
                    status=Grant.Status.EXPIRED,
                    starts_at=r.created_at,
                    ends_at=r.created_at + timedelta(hours=1),
                    activated_at=r.created_at,
                    ended_at=r.created_at + timedelta(hours=1),
                )
                for r in requests
            ]
        )
    return {"people": people, "admins": admins, "grants": grants, "staff": make_staff("bench-staff")}


def _files() -> list[int]:
    """Stored trail files with real records (the detail page reads an event's record from its file)."""
    from django.utils import timezone

    from activity.models import TrailFile
    from activity.simulator import CloudTrailSimulator

    sim = CloudTrailSimulator(org_id="o-bench00000", bucket="porte-org-trail")
    at = timezone.now() - timedelta(days=1)
    ids = []
    for f in range(FILES):
        account = f"{100000000000 + f % len(PARTNERS):012d}"
        identity = sim.role_identity(
            account, "porte-readonly", f"porte-g{f}-0badcafe", source_identity="porte-x"
        )
        records = [
            sim.record(account, identity, f"{SERVICES[i % 40]}.amazonaws.com", "DescribeThings", at=at)
            for i in range(RECORDS_PER_FILE)
        ]
        content = sim.encode(records)
        file = TrailFile.objects.create(
            bucket=sim.bucket,
            key=sim.log_key(account, at),
            content=content,
            size=len(content),
            events=RECORDS_PER_FILE,
            newest_event_time=at,
        )
        ids.append(file.pk)
    return ids


_GRANTS_SQL = """
CREATE TEMP TABLE bench_grant AS
  SELECT (row_number() OVER (ORDER BY md5(g.id::text)))::int - 1 AS idx, g.id AS grant_id, g.user_id,
         r.partner_id, p.aws_account_id AS account, 'porte-' || replace(u.public_id::text, '-', '') AS source_identity
  FROM grants_grant g JOIN grants_role r ON r.id = g.role_id JOIN partners_partner p ON p.id = r.partner_id
  JOIN portal_user u ON u.id = g.user_id
"""
_CALLS_SQL = """
CREATE TEMP TABLE bench_call AS
  SELECT ((s.i - 1) * 3 + (v.k - 1))::int AS idx, s.name || '.amazonaws.com' AS source,
         v.verb || initcap(s.name) || 'Resources' AS name, v.read_only
  FROM unnest(%(services)s::text[]) WITH ORDINALITY AS s(name, i)
  CROSS JOIN unnest(%(verbs)s::text[], %(reads)s::boolean[]) WITH ORDINALITY AS v(verb, read_only, k)
  UNION ALL SELECT -1, %(rare_source)s, %(rare_name)s, true
"""
# What events share: an action per call and outcome (ok, or AccessDenied), a context per grant and kind of
# principal (0: the grant's Porte session; 1: an IAM user in the partner's account, flagged; 2: an account of no
# partner).
_ACTIONS_SQL = """
CREATE TEMP TABLE bench_action AS
  WITH stored AS (
    INSERT INTO activity_activityaction (event_source, event_name, read_only, error_code, error_message, digest)
    SELECT c.source, c.name, c.read_only, CASE WHEN o.err THEN 'AccessDenied' ELSE '' END,
           CASE WHEN o.err THEN 'User is not authorized to perform: ' || c.name ELSE '' END,
           md5('action' || c.idx || o.err)
    FROM bench_call c CROSS JOIN (VALUES (false), (true)) AS o(err)
    RETURNING id, event_name, error_code <> '' AS err
  )
  SELECT c.idx, s.err, s.id AS action_id FROM stored s JOIN bench_call c ON c.name = s.event_name
"""
_CONTEXTS_SQL = """
CREATE TEMP TABLE bench_context AS
  WITH stored AS (
    INSERT INTO activity_activitycontext (account_id, aws_region, identity_type, principal_arn, access_key_id,
      source_ip, user_agent, credential_id, is_porte_session, attribution_conflict, digest)
    SELECT CASE WHEN k.kind = 2 THEN %(outside)s ELSE g.account END, 'eu-west-1',
           CASE WHEN k.kind = 0 THEN 'AssumedRole' ELSE 'IAMUser' END,
           CASE WHEN k.kind = 0
                THEN 'arn:aws:sts::' || g.account || ':assumed-role/porte-readonly/porte-g' || g.grant_id
                ELSE 'arn:aws:iam::' || g.account || ':user/legacy-deployer' END,
           'ASIA' || upper(substr(md5('key' || g.grant_id), 1, 16)), '203.0.113.' || (g.grant_id %% 250),
           %(agent)s, NULL, k.kind = 0, false, md5('context' || g.idx || '.' || k.kind)
    FROM bench_grant g CROSS JOIN (VALUES (0), (1), (2)) AS k(kind)
    RETURNING id, digest
  )
  SELECT g.idx, k.kind, s.id AS context_id
  FROM bench_grant g CROSS JOIN (VALUES (0), (1), (2)) AS k(kind)
  JOIN stored s ON s.digest = md5('context' || g.idx || '.' || k.kind)
"""
# The calls are skewed (power of a uniform draw): service 0 is the busiest, service 39 the rarest.
_INSERT_SQL = """
INSERT INTO activity_event (event_time, event_id, hour, file_id, position, partner_id, user_id, grant_id,
  context_id, action_id, flagged, error_code)
SELECT e.at, md5('event' || e.i)::uuid, floor(extract(epoch FROM e.at) / 3600)::int,
       (%(files)s::int[])[1 + e.i %% %(nfiles)s], e.i %% %(per_file)s,
       CASE WHEN e.kind = 2 THEN NULL ELSE g.partner_id END,
       CASE WHEN e.kind = 0 THEN g.user_id END,
       CASE WHEN e.kind = 0 THEN g.grant_id END,
       x.context_id, a.action_id, e.kind = 1,
       CASE WHEN e.err THEN 'AccessDenied' ELSE '' END
FROM (
  SELECT i, %(now)s::timestamptz - make_interval(secs => i * %(spacing)s + random()) AS at,
         floor(%(ngrants)s * power(random(), 1.6))::int AS gi,
         CASE WHEN i %% %(rare_every)s = 0 THEN -1
              ELSE floor(40 * power(random(), 2.2))::int * 3 + floor(random() * 3)::int END AS ci,
         CASE WHEN r < 0.05 THEN 1 WHEN r < 0.07 THEN 2 ELSE 0 END AS kind,
         random() < 0.03 AS err
  FROM (SELECT i, random() AS r FROM generate_series(%(first)s, %(last)s) AS i) AS s
) AS e
JOIN bench_grant g ON g.idx = e.gi
JOIN bench_action a ON a.idx = e.ci AND a.err = e.err
JOIN bench_context x ON x.idx = e.gi AND x.kind = e.kind
"""


def _load(events: int, file_ids: list[int]) -> float:
    from django.db import connection
    from django.utils import timezone

    from activity import partitions
    from activity.models import ActivityEvent
    from activity.simulator import CLI_AGENT
    from grants.models import Grant

    started = time.perf_counter()
    meta = ActivityEvent._meta
    # The months the events fall in (on PostgreSQL the table is partitioned by month; see activity/partitions.py).
    partitions.ensure([timezone.now() - timedelta(days=day) for day in range(32)])
    with connection.schema_editor() as editor:
        for index in meta.indexes:
            editor.remove_index(ActivityEvent, index)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(_GRANTS_SQL)
        cursor.execute(
            _CALLS_SQL,
            {
                "services": SERVICES,
                "verbs": [v for v, _ in VERBS],
                "reads": [r for _, r in VERBS],
                "rare_source": RARE_SOURCE,
                "rare_name": RARE_NAME,
            },
        )
        cursor.execute(_ACTIONS_SQL)
        cursor.execute(_CONTEXTS_SQL, {"outside": OUTSIDE_ACCOUNT, "agent": CLI_AGENT})
        params = {
            "now": timezone.now() - timedelta(minutes=3),
            "spacing": 30 * 86400 / events,
            "files": file_ids,
            "nfiles": len(file_ids),
            "per_file": RECORDS_PER_FILE,
            "rare_every": RARE_EVERY,
            "ngrants": Grant.objects.count(),
        }
        step = 500_000
        for first in range(1, events + 1, step):
            cursor.execute(_INSERT_SQL, {**params, "first": first, "last": min(first + step - 1, events)})
        loaded = time.perf_counter() - started
        print(f"  loaded {events:,} events in {loaded:.1f} s; building the indexes…", flush=True)
    with connection.schema_editor() as editor:
        for index in meta.indexes:
            editor.add_index(ActivityEvent, index)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {meta.db_table}")
    return time.perf_counter() - started


# --- measuring --------------------------------------------------------------------------------------------------


def _client(user: Any) -> Any:
    from django.test import Client

    from tests.fixtures.domain import sign_in_as

    client = Client(HTTP_HOST="127.0.0.1")
    sign_in_as(client, user)
    return client


def _time(client: Any, urls: list[str], n: int) -> list[float]:
    for url in urls[:3]:  # warm-up: connections, templates, the first plan
        client.get(url)
    times = []
    for i in range(n):
        url = urls[i % len(urls)]
        started = time.perf_counter()
        response = client.get(url)
        if response.streaming:  # an export: until its first rows (a chunk of 500), the rest streams after
            for chunk in response.streaming_content:
                if len(chunk) > 1000:  # not the JSON export's opening bracket
                    break
            response.close()
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise BenchError(f"GET {url} answered {response.status_code}")
        times.append(elapsed)
    return times


def _plan(user: Any, url: str) -> str:
    """The plan of the page query behind `url` as `user` sees it: the scans used, rows read, execution time."""
    import re
    from urllib.parse import urlsplit

    from django.db import connection
    from django.http import QueryDict

    from activity.access import activity_visible_to
    from activity.filters import ActivityFilterForm
    from activity.selectors import activity_page_query

    form = ActivityFilterForm(QueryDict(urlsplit(url).query))
    if not form.is_valid():
        return f"invalid filter {form.errors}"
    events = form.activity_filter().apply(activity_visible_to(user))
    sql, params = activity_page_query(events, after=form.cleaned_data["cursor"]).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        lines = [row[0] for row in cursor.fetchall()]
    scans = [
        re.sub(r"\s+\(cost=.*?\)", "", line).strip().removeprefix("->  ")
        for line in lines
        if "Scan" in line or "Sort" in line
    ]
    removed = sum(int(n) for line in lines for n in re.findall(r"Rows Removed by Filter: (\d+)", line))
    total = next((line for line in lines if line.startswith("Execution Time")), "")
    return f"{'; '.join(scans)[:200]} | rows filtered out {removed:,} | {total}"


def measure(env: BenchEnv, args: Any) -> int:
    from django.db import connection

    from activity.filters import cursor_encode
    from activity.models import ActivityEvent
    from activity.selectors import activity_page

    rng = random.Random(5)  # benchmark parameters, not a secret
    env.print_header(
        "activity views",
        [
            f"workload  : {args.events:,} events over 30 days; {len(PARTNERS)} partners x {PEOPLE_PER_PARTNER} people,"
            f" {len(PARTNERS) * PEOPLE_PER_PARTNER * GRANTS_PER_PERSON:,} grants, {len(SERVICES)} services",
            f"requests  : Django test Client, {args.n} per view (after 3 warm-up), DEBUG off",
        ],
    )
    world = _world()
    file_ids = _files()
    load_s = _load(args.events, file_ids)
    with connection.cursor() as cursor:
        stored, _ = _harness.table_storage(ActivityEvent._meta.db_table)
        size = f"{stored / 1e6:,.0f} MB ({stored / args.events:.0f} B/event)"
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE e.error_code <> ''), count(*) FILTER (WHERE a.read_only),"
            " count(*) FILTER (WHERE flagged), count(*) FILTER (WHERE partner_id IS NULL),"
            " count(DISTINCT grant_id), count(DISTINCT user_id)"
            " FROM activity_event e JOIN activity_activityaction a ON a.id = e.action_id"
        )
        total, errors, reads, flagged, outside, grants, users = cursor.fetchone()
    print(
        f"  set-up    : {total:,} events ({errors / total:.1%} errors, {reads / total:.1%} read-only, "
        f"{flagged / total:.1%} flagged, {outside / total:.1%} no partner; {grants:,} grants and {users} people "
        f"with events); load + indexes + ANALYZE {load_s:.1f} s; table + indexes {size}"
    )

    staff, admin = _client(world["staff"]), _client(world["admins"][0])
    partner_id = world["admins"][0].membership.partner_id
    own = ActivityEvent.objects.filter(partner_id=partner_id, flagged=False)
    grants = [g for g in world["grants"] if g.role.partner_id == partner_id]
    people = [
        p
        for p in world["people"]
        if p.membership.partner_id == partner_id and not p.membership.is_partner_admin
    ]
    services = [s.split(".")[0] for s in SERVICES]
    names = [f"{verb}{s.title()}Resources" for s in SERVICES for verb, _ in VERBS]
    newest = ActivityEvent.objects.order_by("-event_time").values_list("event_time", flat=True).first()
    assert newest is not None
    windows = []
    for _ in range(20):
        start = newest - timedelta(days=rng.uniform(0.5, 29))
        windows.append(
            urlencode({"since": start.isoformat(), "until": (start + timedelta(hours=2)).isoformat()})
        )
    rng.shuffle(grants)
    rng.shuffle(people)
    rng.shuffle(services)
    rng.shuffle(names)
    # Page 50 of the staff list: the cursor after 49 pages.
    after = None
    for _ in range(49):
        after = activity_page(ActivityEvent.objects.all(), after=after).next
    assert after is not None
    deep = f"/activity/?cursor={quote(cursor_encode(after))}"
    details = [event.get_absolute_url() for event in own.order_by("-event_time").only("pk")[:2000:97]]

    cases: list[tuple[str, Any, list[str]]] = [
        ("staff: all", staff, ["/activity/"]),
        ("partner admin: organisation", admin, ["/activity/"]),
        ("partner user: own", None, []),  # each person signed in as themselves, below
        ("admin: by grant", admin, [f"/activity/?grant={g.pk}" for g in grants[:40]]),
        ("admin: by service", admin, [f"/activity/?service={s}" for s in services]),
        ("admin: by event name", admin, [f"/activity/?event={n}" for n in names[:40]]),
        ("admin: errors only", admin, ["/activity/?errors_only=on"]),
        ("admin: writes", admin, ["/activity/?access=write"]),
        ("admin: reads", admin, ["/activity/?access=read"]),
        ("admin: 2-hour time range", admin, [f"/activity/?{w}" for w in windows]),
        ("staff: by service", staff, [f"/activity/?service={s}" for s in services]),
        ("staff: by event name", staff, [f"/activity/?event={n}" for n in names[:40]]),
        ("staff: errors only", staff, ["/activity/?errors_only=on"]),
        ("staff: page 50 (keyset)", staff, [deep]),
        ("admin: event detail", admin, details),
        ("admin: API list", admin, ["/api/v1/activity/", "/api/v1/activity/?access=write"]),
        (
            "admin: export CSV, first rows",
            admin,
            ["/activity/export.csv", "/activity/export.csv?access=write"],
        ),
        (
            "staff: export JSON, first rows",
            staff,
            ["/activity/export.json", "/activity/export.json?errors_only=on"],
        ),
    ]
    print("\n  plans of the page queries (EXPLAIN ANALYZE of the first request of each view):")
    for label, client, urls in cases:
        if urls and (urls[0] == "/activity/" or urls[0].startswith("/activity/?")):
            viewer = world["staff"] if client is staff else world["admins"][0]
            print(f"    {label:<30} {_plan(viewer, urls[0])}")
    print(f"    {'partner user: own':<30} {_plan(people[0], '/activity/')}")
    print(f"\n  {'view':<38} latency per full request")
    everything: list[float] = []
    worst = ("", 0.0)
    for label, client, urls in cases:
        if client is None:
            times: list[float] = []
            for p in people[: max(1, min(20, args.n // 2))]:
                times += _time(_client(p), ["/activity/"], max(2, args.n // 20))
        else:
            times = _time(client, urls, args.n)
        stats = print_row(label, times)
        everything += times
        if stats["p95"] > worst[1]:
            worst = (label, stats["p95"])
    overall = percentile(everything, 95)
    print(
        f"\n  overall p95 {overall * 1000:.1f} ms over {len(everything)} requests; slowest view: "
        f"{worst[0]} (p95 {worst[1] * 1000:.1f} ms) -> every view p95 ≤ {TARGET_P95_S * 1000:.0f} ms: "
        f"{'PASS' if worst[1] <= TARGET_P95_S else 'FAIL'}"
    )

    # The far end of the long tail (0.02 % of calls), apart from the target: a page of 50 such calls spans
    # the whole month, so whatever index serves the filter is read across all of it.
    rare = [
        ("staff: rarest service", staff, [f"/activity/?service={RARE_SOURCE}"]),
        ("staff: rarest event name", staff, [f"/activity/?event={RARE_NAME}"]),
        ("admin: rarest service", admin, [f"/activity/?service={RARE_SOURCE}"]),
        ("admin: rarest event name", admin, [f"/activity/?event={RARE_NAME}"]),
    ]
    print(f"\n  long tail ({RARE_SOURCE} {RARE_NAME}: 1 call in {RARE_EVERY:,}), not in the target:")
    for label, client, urls in rare:
        viewer = world["staff"] if client is staff else world["admins"][0]
        print(f"    {label:<30} {_plan(viewer, urls[0])}")
    for label, client, urls in rare:
        print_row(label, _time(client, urls, max(5, args.n // 4)))
    return 0


if __name__ == "__main__":
    run(main)
