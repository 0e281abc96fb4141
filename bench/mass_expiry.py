"""Mass expiry: 10,000 grants on 100 roles all due at the same instant; how long until every deny is in place,
and how many IAM calls the sweeper makes doing it.

    .venv/bin/python bench/mass_expiry.py [--grants 10000] [--roles 100] [--partners 4] [--pool prefork]
                                          [--sweep 1.0] [--spread 0] [--lead 5]

Set-up: `--partners` partners built like the tests' `build_partner` (each a dedicated moto account with a
boundary policy), `--roles` roles between them, each provisioned in moto (IAM role, trust, boundary, inline
policy) through Porte's provisioning code. Then, for speed, the people and their grants are written directly with
`bulk_create`: `--grants` distinct users (each with a membership in the partner of their role), one approved
AccessRequest and one `active` Grant each, spread round-robin over the roles (100 per role by default). That
skips the request service and its audit events (grant.created, ...) and the activation task, which other
benchmarks measure (time_to_access, expiry_lag); the expiry path under test is untouched.

Simulated time: once the worker is running, one UPDATE sets every grant's `ends_at` to the same instant M,
`--lead` seconds ahead (with `--spread S`: evenly over M .. M+S). Nothing else is touched.

The system as it runs: a real `celery -A portal worker -B` process (prefork -c 2 by default on this 2-core
machine; `--pool solo` for one process) whose embedded beat runs the expiry sweep every `--sweep` seconds
(PORTE_EXPIRY_SWEEP_SECONDS). The sweeper is `grants.services.expiry.grants_expire_due` in the worker, unchanged.

Counting IAM calls: the worker's AWS_ENDPOINT_URL is a loopback counting proxy in this process
(tests/peers/aws_proxy.py) that forwards every call to the moto server process and records its action,
parameters (RoleName, PolicyName, the policy document) and when moto's answer came back. Nothing is held.

Measurement:
- deny in place, exact: for every grant, the moment moto answered 200 to the first PutRolePolicy(porte-revocations)
  on its role whose document denies its holder (by SourceIdentity, or by grant id in the compact form);
- deny in place, observed: this process polls moto's GetRolePolicy(porte-revocations) directly (not through the
  proxy) on every role not yet complete, and records when each role's document first denies all its holders
  (an upper bound, late by at most one poll loop);
- time to the last deny = the latest of those minus M (minus the last ends_at with --spread);
- grants/s, `grant.expired` audit events written (and the audit hash chain verified), IAM calls by action,
  revocation puts per sweep: grants claimed by one sweep share its `claimed_at`, so the claims are grouped by it
  and the ideal is one put per role per claiming sweep.

Targets: the last deny within 60 s of M; about one PutRolePolicy per role per sweep (not per grant).

`--profile` runs no worker: it makes every grant due and calls grants_expire_due in this process under cProfile
until none is left, then prints the time, database statements per grant and the top of the profile.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from _harness import BenchEnv, BenchError, base_parser, build_roles, run

TARGET_S = 60.0


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0], default_n=10_000, default_pool="prefork")
    parser.add_argument("--grants", type=int, default=None, help="grants (default 10000; same as --n)")
    parser.add_argument("--roles", type=int, default=100, help="roles (default 100)")
    parser.add_argument("--partners", type=int, default=4, help="partner accounts, 2..4 (default 4)")
    parser.add_argument("--sweep", type=float, default=1.0, help="PORTE_EXPIRY_SWEEP_SECONDS (default 1.0)")
    parser.add_argument("--lead", type=float, default=5.0, help="M = now + lead seconds (default 5)")
    parser.add_argument(
        "--spread", type=float, default=0.0, help="ends_at spread over M..M+spread (default 0)"
    )
    parser.add_argument("--poll-ms", type=float, default=250.0, help="pause between moto poll loops (250 ms)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="give up this long after M (default 300 s)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="no worker: make every grant due and run grants_expire_due in this process under cProfile until "
        "none is left; print the time, database statements per grant and where the time goes",
    )
    args = parser.parse_args()
    args.grants = args.grants or args.n
    if not 1 <= args.partners <= 26 or args.roles < args.partners or args.grants < args.roles:
        parser.error("need 1 <= --partners <= --roles <= --grants")

    with BenchEnv("mass_expiry", sweep_seconds=args.sweep, debug=False) as env:
        return measure(env, args)


def _document(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def _denied(document: dict[str, Any]) -> tuple[set[str], set[int], list[tuple[set[str], datetime]]]:
    """(source identities, grant ids, [(identities, cutoff)]) a porte-revocations document denies."""
    identities: set[str] = set()
    grant_ids: set[int] = set()
    cutoffs = []
    for statement in document.get("Statement", []):
        condition = statement.get("Condition", {})
        equals = condition.get("StringEquals", {})
        if "aws:SourceIdentity" in equals:
            names = equals["aws:SourceIdentity"]
            names = {names} if isinstance(names, str) else set(names)
            identities |= names
            cutoff = condition["DateLessThan"]["aws:TokenIssueTime"]
            cutoffs.append((names, datetime.strptime(cutoff, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)))
        for key, values in equals.items():
            if key.startswith("aws:PrincipalTag/"):
                grant_ids |= {int(v) for v in ([values] if isinstance(values, str) else values)}
    return identities, grant_ids, cutoffs


def _create_grants(roles: list[Any], count: int, ends_at: datetime) -> tuple[list[int], float]:
    """`count` users, memberships, approved requests and active grants, written with bulk_create."""
    from django.db import transaction
    from django.utils import timezone

    from grants.models import AccessRequest, Grant
    from partners.models import Membership
    from portal.models import User

    started = time.perf_counter()
    now = timezone.now()
    plan = [roles[i % len(roles)] for i in range(count)]
    with transaction.atomic():
        users = User.objects.bulk_create(
            [
                User(
                    username=f"mass-{i:05d}", email=f"mass-{i:05d}@{role.partner.slug}.example", password="!"
                )
                for i, role in enumerate(plan)
            ],
            batch_size=2000,
        )
        Membership.objects.bulk_create(
            [
                Membership(user=user, partner=role.partner, groups=["engineers"])
                for user, role in zip(users, plan, strict=True)
            ],
            batch_size=2000,
        )
        requests = AccessRequest.objects.bulk_create(
            [
                AccessRequest(
                    requester=user,
                    role=role,
                    justification="Benchmark: mass expiry",
                    requested_duration=timedelta(hours=1),
                    status=AccessRequest.Status.APPROVED,
                    created_at=now,
                    decided_at=now,
                )
                for user, role in zip(users, plan, strict=True)
            ],
            batch_size=2000,
        )
        grants = Grant.objects.bulk_create(
            [
                Grant(
                    request=request,
                    user=user,
                    role=role,
                    status=Grant.Status.ACTIVE,
                    starts_at=now,
                    ends_at=ends_at,
                    activated_at=now,
                )
                for request, user, role in zip(requests, users, plan, strict=True)
            ],
            batch_size=2000,
        )
    return [g.pk for g in grants], time.perf_counter() - started


def measure(env: BenchEnv, args: Any) -> int:
    import os

    from django.utils import timezone

    from tests.peers.aws_proxy import AwsProxy

    # --- set-up ----------------------------------------------------------------------------------------------
    t0 = time.perf_counter()
    slugs = [f"mass-{chr(ord('a') + k)}" for k in range(args.partners)]
    per_partner = -(-args.roles // args.partners)
    roles = build_roles(slugs, [f"role{k:02d}" for k in range(1, per_partner)])
    # Keep `--roles` roles, as evenly spread over the partners as the round-robin allows.
    by_partner: dict[int, list[Any]] = defaultdict(list)
    for role in roles:
        by_partner[role.partner_id].append(role)
    roles = [r for k in range(per_partner) for p in by_partner.values() if k < len(p) for r in [p[k]]]
    roles = roles[: args.roles]
    roles_s = time.perf_counter() - t0
    far = timezone.now() + timedelta(hours=1)
    grant_ids, bulk_s = _create_grants(roles, args.grants, far)
    if args.profile:
        return _profile(env, args, grant_ids)

    proxy = AwsProxy(env.moto_url).start()
    os.environ["AWS_ENDPOINT_URL"] = proxy.url  # the worker's; this process keeps talking to moto directly
    try:
        env.start_worker(pool=args.pool, beat=True)
        return _expire(env, args, roles, grant_ids, proxy, f"{roles_s:.1f} s", f"{bulk_s:.1f} s")
    finally:
        proxy.close()


def _expire(
    env: BenchEnv, args: Any, roles: list[Any], grant_ids: list[int], proxy: Any, roles_s: str, bulk_s: str
) -> int:
    from django.db import transaction
    from django.db.models import Count
    from django.utils import timezone

    from grants import policies
    from grants.models import Grant
    from portal import aws
    from portal.audit import unsealed, verify_chain
    from portal.models import AuditEvent

    calls_before_m = len(proxy.snapshot())

    # --- simulated time: every grant due at M (or over M .. M+spread) ------------------------------------------
    m = timezone.now() + timedelta(seconds=args.lead)
    if args.spread:
        step = args.spread / max(1, len(grant_ids) - 1)
        with transaction.atomic():
            for k in range(0, len(grant_ids), 500):
                chunk = grant_ids[k : k + 500]
                for j, gid in enumerate(chunk):
                    Grant.objects.filter(pk=gid).update(ends_at=m + timedelta(seconds=(k + j) * step))
    else:
        Grant.objects.filter(pk__in=grant_ids).update(ends_at=m)
    rows = list(
        Grant.objects.filter(pk__in=grant_ids).values_list("pk", "user__public_id", "role_id", "ends_at")
    )
    identity_of = {pk: f"porte-{public_id.hex}" for pk, public_id, _, _ in rows}
    role_of = {pk: role_id for pk, _, role_id, _ in rows}
    ends_at = {pk: end for pk, _, _, end in rows}
    last_end = max(ends_at.values())
    holders: dict[int, set[str]] = defaultdict(set)
    grants_on: dict[int, set[int]] = defaultdict(set)
    for pk, role_id in role_of.items():
        holders[role_id].add(identity_of[pk])
        grants_on[role_id].add(pk)

    # --- poll moto until every role denies all its holders ---------------------------------------------------
    pollers = {role.pk: (role, aws.partner(role.partner.aws_account_id).iam) for role in roles}
    complete_at: dict[int, float] = {}
    loops = 0
    give_up = time.time() + (last_end - timezone.now()).total_seconds() + args.timeout
    while len(complete_at) < len(pollers):
        loops += 1
        for role_id, (role, iam) in pollers.items():
            if role_id in complete_at:
                continue
            try:
                document = _document(
                    iam.get_role_policy(RoleName=role.iam_name, PolicyName=policies.REVOCATIONS_POLICY_NAME)[
                        "PolicyDocument"
                    ]
                )
            except aws.AwsRejected as exc:
                if exc.code == "NoSuchEntity":
                    continue
                raise
            seen = time.time()
            identities, ids, _ = _denied(document)
            if holders[role_id] <= identities or grants_on[role_id] <= ids:
                complete_at[role_id] = seen
        if time.time() > give_up:
            done = sum(len(grants_on[r]) for r in complete_at)
            raise BenchError(
                f"only {len(complete_at)} of {len(pollers)} roles ({done} grants) denied {args.timeout:g} s "
                f"after the last ends_at\n{env.worker_output()}"
            )
        time.sleep(args.poll_ms / 1000)

    # --- the database's view: all expired, audited once ------------------------------------------------------
    deadline = time.monotonic() + 60
    while Grant.objects.filter(pk__in=grant_ids).exclude(status=Grant.Status.EXPIRED).exists():
        if time.monotonic() > deadline:
            raise BenchError(f"denies in place but grants not all marked expired\n{env.worker_output()}")
        time.sleep(0.1)
    all_done = time.time()
    expired_events = AuditEvent.objects.filter(action="grant.expired").count()
    per_grant = Counter(AuditEvent.objects.filter(action="grant.expired").values_list("object_id", flat=True))
    twice = sum(1 for n in per_grant.values() if n != 1)
    # The worker's beat seals the chain every PORTE_AUDIT_SEAL_SECONDS; wait for the tail, then verify it all.
    t_seal = time.perf_counter()
    while unsealed().events and time.perf_counter() - t_seal < 60:
        time.sleep(0.1)
    sealed_s, left_unsealed = time.perf_counter() - t_seal, unsealed().events
    t_chain = time.perf_counter()
    chain_break = verify_chain()
    chain_s = time.perf_counter() - t_chain
    ended = dict(Grant.objects.filter(pk__in=grant_ids).values_list("pk", "ended_at"))
    cutoffs = dict(Grant.objects.filter(pk__in=grant_ids).values_list("pk", "deny_cutoff"))
    claims = list(
        Grant.objects.filter(pk__in=grant_ids)
        .values("claimed_at")
        .annotate(n=Count("id"), roles=Count("role_id", distinct=True))
        .order_by("claimed_at")
    )

    # --- exact times from the proxy: the first accepted put covering each grant ------------------------------
    calls = proxy.snapshot()[calls_before_m:]
    puts = [
        c for c in calls if c.action == "PutRolePolicy" and c.policy_name == policies.REVOCATIONS_POLICY_NAME
    ]
    covered_at: dict[int, float] = {}
    wrong_role = 0
    identity_to_grant = {identity: pk for pk, identity in identity_of.items()}
    # Role names repeat across partner accounts; the put's account is not in the request, so a put is matched to
    # the role of that name whose holders it names.
    for call in sorted(puts, key=lambda c: c.answered or float("inf")):
        if call.status != 200:
            continue
        identities, ids, _ = _denied(_document(call.params["PolicyDocument"]))
        covered = {identity_to_grant[i] for i in identities if i in identity_to_grant} | (ids & set(role_of))
        for gid in covered:
            covered_at.setdefault(gid, call.answered)
        if covered and len({role_of[g] for g in covered}) != 1:
            wrong_role += 1
    missing_exact = len(grant_ids) - len(covered_at)
    exact_last = max(covered_at.values()) if covered_at else float("nan")
    observed_last = max(complete_at.values())
    reference = last_end.timestamp()
    m_ts = m.timestamp()
    lags = [covered_at[g] - ends_at[g].timestamp() for g in covered_at]
    early = sum(1 for lag in lags if lag < 0)
    short_cutoff = sum(
        1 for g in grant_ids if cutoffs[g] is None or cutoffs[g] < ends_at[g].replace(microsecond=0)
    )

    by_action = Counter(c.action for c in calls)
    puts_ok = sum(1 for c in puts if c.status == 200)
    ideal_puts = sum(c["roles"] for c in claims)
    sweeps = _sweep_runs(env)

    # --- report ----------------------------------------------------------------------------------------------
    env.print_header(
        "mass expiry",
        [
            f"grants    : {len(grant_ids)} active grants (distinct users) on {len(roles)} roles in "
            f"{args.partners} partner accounts ({len(grant_ids) // len(roles)} per role)",
            f"data      : roles provisioned in moto through Porte ({roles_s}); users, memberships, "
            f"requests, grants bulk_created ({bulk_s}; no request/activation audit events)",
            f"simulated : ends_at of every grant moved to M = now+{args.lead:g}s"
            + (f" .. M+{args.spread:g}s (staggered)" if args.spread else " (one instant)"),
            f"sweeper   : grants_expire_due in the worker, beat every {args.sweep:g} s, SWEEP_BATCH "
            f"{_sweep_batch()}; worker AWS calls through a counting proxy",
            f"polling   : GetRolePolicy on incomplete roles straight to moto, {loops} loops, "
            f"pause {args.poll_ms:g} ms",
        ],
    )
    total = exact_last - m_ts
    print("time from M (the instant every grant became due)")
    print(f"  last deny in place, exact (moto's answer to the put) : {exact_last - m_ts:7.2f} s")
    print(f"  last deny in place, observed (poll of moto)          : {observed_last - m_ts:7.2f} s")
    if args.spread:
        print(f"  last deny after the last ends_at (exact)             : {exact_last - reference:7.2f} s")
    print(
        f"  first deny in place (exact)                          : {min(covered_at.values()) - m_ts:7.2f} s"
    )
    print(f"  all grants marked expired (DB, seen)                 : {all_done - m_ts:7.2f} s")
    ended_lags = [(ended[g] - ends_at[g]).total_seconds() for g in grant_ids]
    print(
        f"  grant marked expired (ended_at - ends_at)            : max {max(ended_lags):.2f} s, "
        f"median {sorted(ended_lags)[len(ended_lags) // 2]:.2f} s"
    )
    print(
        f"  throughput                                           : {len(grant_ids) / max(total, 1e-9):7.0f} grants/s"
    )
    print()
    print("sweeps that ended grants (worker log: runtime, grants ended)")
    for finished, runtime, n in sweeps:
        print(f"  {finished}  {runtime:7.2f} s  {n:6d}")
    print("claims (grants sharing a sweep's claimed_at)")
    for c in claims:
        at = c["claimed_at"].timestamp() - m_ts if c["claimed_at"] else float("nan")
        print(f"  M+{at:6.2f} s  {c['n']:6d} grants on {c['roles']:4d} roles")
    print()
    print("AWS calls by the worker after M (all of them, through the proxy)")
    for action, n in by_action.most_common():
        print(f"  {action:<28} {n:6d}")
    print(
        f"  PutRolePolicy(porte-revocations): {len(puts)} ({puts_ok} accepted) for {len(grant_ids)} grants; "
        f"ideal one per role per claiming sweep = {ideal_puts}; {len(puts) / max(1, ideal_puts):.2f}x ideal, "
        f"{len(puts) / len(grant_ids):.3f} per grant"
    )
    print()
    print(
        f"audit     : {expired_events} grant.expired events, {twice} grants with other than one; "
        f"chain {'intact' if chain_break is None else f'BROKEN at {chain_break}'} (verified in {chain_s:.1f} s; "
        f"tail sealed {sealed_s:.1f} s after the last grant was seen expired, {left_unsealed} left unsealed)"
    )
    print(
        f"checks    : grants without an accepted covering put {missing_exact}, puts naming several roles' "
        f"holders {wrong_role}, deny before ends_at {early}, cutoff before ends_at {short_cutoff}"
    )
    met = total <= TARGET_S
    print(f"target last deny <= {TARGET_S:g} s after M: {'MET' if met else 'NOT MET'} ({total:.2f} s)")
    print(
        f"target ~one put per role per sweep: {'MET' if len(puts) <= 1.1 * ideal_puts else 'NOT MET'} "
        f"({len(puts)} puts, ideal {ideal_puts})"
    )
    bad = (
        missing_exact
        or wrong_role
        or early
        or short_cutoff
        or twice
        or chain_break is not None
        or left_unsealed
    )
    bad = bad or expired_events != len(grant_ids)
    return 1 if bad else 0


def _profile(env: BenchEnv, args: Any, grant_ids: list[int]) -> int:
    """Where the sweeper's time goes: the same code, in this process, under cProfile, with queries counted."""
    import cProfile
    import io
    import pstats

    from django.db import connection
    from django.utils import timezone

    from grants.models import Grant
    from grants.services import expiry

    statements: Counter[str] = Counter()

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements[sql.split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    Grant.objects.filter(pk__in=grant_ids).update(ends_at=timezone.now() - timedelta(seconds=1))
    profiler = cProfile.Profile()
    sweeps, ended = 0, 0
    started = time.perf_counter()
    with connection.execute_wrapper(count):
        profiler.enable()
        while n := expiry.grants_expire_due():
            sweeps += 1
            ended += n
        profiler.disable()
    elapsed = time.perf_counter() - started
    env.print_header(
        "mass expiry, sweeper profile (in-process, no worker)",
        [
            f"grants    : {len(grant_ids)} due grants on {args.roles} roles in {args.partners} partner accounts"
        ],
    )
    print(
        f"ended {ended} grants in {sweeps} sweeps, {elapsed:.2f} s: {elapsed / max(1, ended) * 1000:.2f} ms and "
        f"{sum(statements.values()) / max(1, ended):.1f} database statements per grant "
        f"({', '.join(f'{k} {v}' for k, v in statements.most_common())})"
    )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"(grants|portal)/|psycopg/(connection|client_cursor)", 25)
    print(out.getvalue())
    return 0 if ended == len(grant_ids) else 1


def _sweep_batch() -> int:
    from grants.services.expiry import SWEEP_BATCH

    return SWEEP_BATCH


def _sweep_runs(env: BenchEnv) -> list[tuple[str, float, int]]:
    """(log time, runtime, grants ended) of every sweep that ended at least one grant."""
    if not env.worker:
        return []
    text = env.worker.log_path.read_text(errors="replace")
    pattern = re.compile(
        r"^\[?(\S+ [0-9:,]+).*grants\.tasks\.expiry_sweep\[[^\]]+\] succeeded in ([0-9.e-]+)s: (\d+)", re.M
    )
    return [(at, float(t), int(n)) for at, t, n in pattern.findall(text) if int(n) > 0]


if __name__ == "__main__":
    run(main)
