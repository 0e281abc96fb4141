"""Access review campaign generation: one partner, 100,000 items (eligibilities, memberships, admins) with their
evidence computed and frozen; how long `review_campaign_start` takes.

    .venv/bin/python bench/review_campaign.py [--items 100000] [--roles 4] [--admins 5000] [--grants 50000]
                                              [--events 500000] [--repeat 1]

Set-up (bulk inserts straight into the tables, in a database of its own, `porte_bench_reviews`): one partner
built like the tests' `build_partner` without AWS, `--roles` roles (policies with wildcards, so the allowed
actions are expanded from parliament's catalogue) open to the group `engineers` and to every member by name;
members so that items = members x (roles + 1) + admins + the roles' group eligibilities ~= `--items`; `--admins`
of them partner admins; sign-ins spread over the last 200 days (some never); `--grants` past grants spread over
(member, role) pairs and the last 180 days; `--events` attributed CloudTrail events under those grants (COPY), a
dozen different actions, a few per cent refused. ANALYZE, then the measurement.

Measured: wall time of `review_campaign_start` (grouped aggregate queries, the items built in memory, COPY of the
items, one audit event, one notice), the statements it ran, and its parts measured separately (the aggregates
alone; the items built and inserted). Figures are printed, never asserted. Target: <= 20 s for 100,000 items.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import _harness
from _harness import BenchEnv, run

TARGET_S = 20.0
ACTIONS = [
    ("ec2.amazonaws.com", "DescribeInstances"),
    ("ec2.amazonaws.com", "DescribeVolumes"),
    ("ec2.amazonaws.com", "DescribeSecurityGroups"),
    ("ec2.amazonaws.com", "StartInstances"),
    ("ec2.amazonaws.com", "StopInstances"),
    ("s3.amazonaws.com", "GetObject"),
    ("s3.amazonaws.com", "ListBucket"),
    ("s3.amazonaws.com", "GetBucketPolicy"),
    ("logs.amazonaws.com", "GetLogEvents"),
    ("logs.amazonaws.com", "DescribeLogGroups"),
    ("cloudwatch.amazonaws.com", "GetMetricData"),
    ("monitoring.amazonaws.com", "GetMetricStatistics"),
]
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ec2:Describe*", "ec2:StartInstances", "ec2:StopInstances", "s3:Get*", "s3:List*"],
            "Resource": "*",
        },
        {"Effect": "Allow", "Action": ["logs:Get*", "logs:Describe*", "cloudwatch:Get*"], "Resource": "*"},
    ],
}


def main() -> int:
    parser = _harness.base_parser(__doc__.splitlines()[0], default_n=100_000, default_pool="solo")
    parser.add_argument("--items", type=int, default=None, help="items to generate (default 100000; = --n)")
    parser.add_argument("--roles", type=int, default=4)
    parser.add_argument("--admins", type=int, default=5000)
    parser.add_argument("--grants", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=1, help="campaigns generated one after the other")
    parser.add_argument("--profile", action="store_true", help="also profile the aggregates (cProfile)")
    args = parser.parse_args()
    items = args.items or args.n
    members = max(1, (items - args.admins - args.roles) // (args.roles + 1))

    # This benchmark's own database, so it never drops another benchmark's.
    _harness.PG_DATABASE = "porte_bench_reviews"
    with BenchEnv("review_campaign", aws=False, debug=False) as env:
        env.print_header(
            "Access review campaign generation",
            [
                f"partner   : 1, {args.roles} roles, {members:,} members ({args.admins:,} admins)",
                f"history   : {args.grants:,} grants, {args.events:,} CloudTrail events",
            ],
        )
        partner = _set_up(members, args.roles, args.admins, args.grants, args.events)
        for attempt in range(args.repeat):
            _measure(partner, attempt)
        if args.profile:
            _profile(partner)
    return 0


def _set_up(members: int, roles: int, admins: int, grants: int, events: int):  # type: ignore[no-untyped-def]
    from django.db import connection

    from activity import interning
    from activity.models import ActivityAction, ActivityContext, ActivityEvent, hour_of
    from grants.models import AccessRequest, Eligibility, Grant
    from grants.services import role_setup
    from partners.models import Membership
    from portal.models import User
    from tests.fixtures.domain import build_partner

    rng = random.Random(42)
    started = time.perf_counter()
    now = datetime.now(UTC)
    world = build_partner("bulk", provision=False)
    partner = world.partner
    role_list = [world.role]
    for i in range(1, roles):
        role_list.append(
            role_setup.role_create(
                partner=partner,
                slug=f"role-{i}",
                name=f"Role {i}",
                inline_policy=POLICY,
                permissions_boundary_arn=world.role.permissions_boundary_arn,
                max_duration=timedelta(hours=2),
                eligible_groups=["engineers"],
            )
        )
    world.role.inline_policy = POLICY
    world.role.save(update_fields=["inline_policy"])

    users = User.objects.bulk_create(
        [User(username=f"m{i:06d}", email=f"m{i:06d}@bulk.example", password="!") for i in range(members)],
        batch_size=5000,
    )
    Membership.objects.bulk_create(
        [
            Membership(
                user=u,
                partner=partner,
                groups=["engineers"],
                is_partner_admin=i < admins,
                last_sign_in_at=None if i % 10 == 0 else now - timedelta(days=rng.uniform(0, 200)),
            )
            for i, u in enumerate(users)
        ],
        batch_size=5000,
    )
    Eligibility.objects.bulk_create(
        [Eligibility(role=r, user=u) for u in users for r in role_list], batch_size=10_000
    )
    pairs = [(rng.choice(users), rng.choice(role_list)) for _ in range(grants)]
    starts = [now - timedelta(days=rng.uniform(1, 180)) for _ in pairs]
    requests = AccessRequest.objects.bulk_create(
        [
            AccessRequest(
                requester=u,
                role=r,
                justification="bench",
                requested_duration=timedelta(hours=1),
                status=AccessRequest.Status.APPROVED,
                created_at=s,
                decided_at=s,
            )
            for (u, r), s in zip(pairs, starts, strict=True)
        ],
        batch_size=5000,
    )
    grant_rows = Grant.objects.bulk_create(
        [
            Grant(
                request=req,
                user=u,
                role=r,
                status=Grant.Status.EXPIRED,
                starts_at=s,
                ends_at=s + timedelta(hours=1),
                activated_at=s,
                ended_at=s + timedelta(hours=1),
            )
            for req, (u, r), s in zip(requests, pairs, starts, strict=True)
        ],
        batch_size=5000,
    )
    # What the events share (activity/interning.py): an action per call and outcome, one context (a session).
    action_ids = {
        (source, name, error): ActivityAction.objects.get_or_create(
            digest=interning.digest((source, name, None, error, "")),
            defaults={"event_source": source, "event_name": name, "read_only": None, "error_code": error},
        )[0].pk
        for source, name in ACTIONS
        for error in ("", "AccessDenied")
    }
    context_values = ("", "eu-west-1", "AssumedRole", "", "", "203.0.113.9", "bench", None, True, False)
    context_id = ActivityContext.objects.get_or_create(
        digest=interning.digest(context_values),
        defaults=dict(zip(interning.CONTEXT_FIELDS, context_values, strict=True)),
    )[0].pk
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        columns = (
            "event_time, event_id, hour, file_id, position, partner_id, user_id, grant_id, context_id, action_id, "
            "flagged, error_code"
        )
        with cursor.copy(f"COPY {ActivityEvent._meta.db_table} ({columns}) FROM STDIN") as copy:
            for _ in range(events):
                grant = rng.choice(grant_rows)
                source, name = rng.choice(ACTIONS)
                at = grant.starts_at + timedelta(minutes=rng.uniform(0, 60))
                error = "AccessDenied" if rng.random() < 0.03 else ""
                copy.write_row(
                    (
                        at,
                        uuid.UUID(int=rng.getrandbits(128)),
                        hour_of(at),
                        0,
                        0,
                        partner.pk,
                        grant.user_id,
                        grant.pk,
                        context_id,
                        action_ids[(source, name, error)],
                        False,
                        error,
                    )
                )
        cursor.execute("ANALYZE")
    print(f"set-up: {time.perf_counter() - started:.1f} s", flush=True)
    return partner


def _measure(partner, attempt: int) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from reviews import evidence, services
    from reviews.models import ReviewCampaign

    ReviewCampaign.objects.filter(partner=partner, status=ReviewCampaign.Status.OPEN).update(
        status=ReviewCampaign.Status.CLOSED, closed_at=datetime.now(UTC)
    )
    now = datetime.now(UTC)
    with CaptureQueriesContext(connection) as fact_queries:
        started = time.perf_counter()
        facts = evidence.partner_facts(partner, period_start=now - timedelta(days=91), period_end=now)
        facts_s = time.perf_counter() - started
    slowest = sorted(fact_queries.captured_queries, key=lambda q: -float(q["time"]))[:3]

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        campaign = services.review_campaign_start(partner=partner)
        elapsed = time.perf_counter() - started
    count = campaign.items.count()

    # The parts on their own, in a transaction rolled back: building the items in memory, then inserting them.
    with transaction.atomic():
        copy = ReviewCampaign.objects.get(pk=campaign.pk)
        copy.pk, copy.status = None, ReviewCampaign.Status.CLOSED
        copy.save()
        t0 = time.perf_counter()
        built = services._item_rows(copy, facts, now)
        t1 = time.perf_counter()
        services._insert(copy, built)
        t2 = time.perf_counter()
        transaction.set_rollback(True)

    by_kind: dict[str, int] = {}
    for kind in campaign.items.values_list("kind", flat=True).iterator(chunk_size=20_000):
        by_kind[kind] = by_kind.get(kind, 0) + 1
    print(
        f"campaign #{campaign.pk} (run {attempt + 1}): {count:,} items " + str(dict(sorted(by_kind.items())))
    )
    print(
        f"  review_campaign_start: {elapsed:.2f} s ({count / elapsed:,.0f} items/s), "
        f"{len(queries)} SQL statements (COPY of the items not counted by Django)"
    )
    print(
        f"  parts: aggregates {facts_s:.2f} s; items built in memory {t1 - t0:.2f} s; inserted (COPY) {t2 - t1:.2f} s"
    )
    for query in slowest:
        print(f"    aggregate {float(query['time']):.2f} s: {query['sql'][:150]}...")
    print(f"  target <= {TARGET_S:.0f} s: {'met' if elapsed <= TARGET_S else 'MISSED'}", flush=True)


def _profile(partner) -> None:  # type: ignore[no-untyped-def]
    import cProfile
    import io
    import pstats

    from django.db import transaction

    from reviews import evidence

    now = datetime.now(UTC)
    profiler = cProfile.Profile()
    with transaction.atomic():
        profiler.enable()
        evidence.partner_facts(partner, period_start=now - timedelta(days=91), period_end=now)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print(out.getvalue())


if __name__ == "__main__":
    run(main)
