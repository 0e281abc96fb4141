"""Expiry lag: how long after `grant.ends_at` the revocation deny covering that person is in place on the role.

    .venv/bin/python bench/expiry_lag.py [--n 100] [--roles 4] [--spread 15] [--sweep 1.0]

Set-up: two partners (each a dedicated moto account), `--roles` provisioned roles between them, `--n` distinct
users each granted one role through the real request path (a Celery worker activates the grants). The worker
runs with embedded beat (`-B`), whose expiry sweeper runs every `--sweep` seconds.

Simulated time: once every grant is active, one transaction moves their `ends_at` (a queryset update) to instants
staggered evenly over `--lead` .. `--lead + --spread` seconds from now, in random order across roles, as if the
grants had been requested for those durations; and, as activation does for every grant, each grant's own expiry
task is queued for its (new) end (the 30-minute ones queued at activation find nothing to do). The worker, beat and
sweeper run as they would in production; the sweeper is the safety net.

Measurement: this process polls moto's IAM `GetRolePolicy(porte-revocations)` for every role in a loop (every
`--poll-ms`), and records for each source identity the first time a deny statement naming it is returned (the
moment the response arrived: an upper bound, so the lag is never under-reported by more than zero and may be
over-reported by up to one poll period). lag = that moment - ends_at. It also checks that each deny sits on the
right role and that its `aws:TokenIssueTime` cutoff is not before `ends_at`.

Figures only; no assertion. The target: p95 lag <= 250 ms.
"""

from __future__ import annotations

import json
import random
import re
import time
from datetime import datetime, timedelta
from typing import Any

from _harness import (
    BenchEnv,
    BenchError,
    base_parser,
    build_roles,
    denied_now,
    make_members,
    print_row,
    request_access,
    run,
)

TARGET_P95_S = 0.25
IAM_ROLE_INLINE_QUOTA = 10_240
PARTNERS = ("bench-a", "bench-b")


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0], default_n=100, default_pool="solo")
    parser.add_argument("--roles", type=int, default=4, help="roles, split between two partners (default 4)")
    parser.add_argument("--lead", type=float, default=2.0, help="first ends_at, seconds from now (default 2)")
    parser.add_argument("--spread", type=float, default=15.0, help="ends_at spread, seconds (default 15)")
    parser.add_argument("--sweep", type=float, default=1.0, help="PORTE_EXPIRY_SWEEP_SECONDS (default 1.0)")
    parser.add_argument("--poll-ms", type=float, default=50.0, help="IAM poll period (default 50 ms)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="how long after the last ends_at to wait for its deny (default 30 s)",
    )
    parser.add_argument("--seed", type=int, default=20251128)
    args = parser.parse_args()
    if args.n < 1 or args.roles < len(PARTNERS):
        parser.error(f"--n must be >= 1 and --roles >= {len(PARTNERS)}")

    with BenchEnv("expiry_lag", sweep_seconds=args.sweep) as env:
        env.start_worker(pool=args.pool, beat=True)
        return measure(env, args)


def _policy_document(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def measure(env: BenchEnv, args: Any) -> int:
    from django.db import transaction
    from django.db.models import Count
    from django.utils import timezone

    from grants import policies, tasks
    from grants.models import Grant
    from portal import aws

    t_setup = time.perf_counter()
    per_partner = -(-args.roles // len(PARTNERS))
    extra = [f"role{k}" for k in range(1, per_partner)]
    roles = build_roles(PARTNERS, extra)[: args.roles]
    # Round-robin users over roles; each user belongs to the partner of their role.
    plan = [roles[i % len(roles)] for i in range(args.n)]
    users: list[Any] = []
    for partner_slug in PARTNERS:
        wanted = [i for i, r in enumerate(plan) if r.partner.slug == partner_slug]
        partner = next(r.partner for r in roles if r.partner.slug == partner_slug)
        members = make_members(partner, len(wanted), f"{partner_slug}-user")
        users.extend(zip(wanted, members, strict=True))
    users.sort(key=lambda pair: pair[0])

    grants = [request_access(user, plan[i]) for i, user in users]
    grant_ids = [g.pk for g in grants]

    def all_active() -> bool:
        states = dict(
            Grant.objects.filter(pk__in=grant_ids).order_by().values_list("status").annotate(n=Count("id"))
        )
        bad = {s: n for s, n in states.items() if s not in (Grant.Status.ACTIVE, Grant.Status.PENDING)}
        if bad:
            raise BenchError(f"grants left the pending/active path: {bad}\n{env.worker_output()}")
        return states.get(Grant.Status.ACTIVE, 0) == len(grant_ids)

    deadline = time.monotonic() + 60 + 0.5 * args.n
    while not all_active():
        if time.monotonic() > deadline:
            raise BenchError(
                f"not every grant became active within {60 + 0.5 * args.n:g} s\n{env.worker_output()}"
            )
        time.sleep(0.05)
    setup_s = time.perf_counter() - t_setup

    # --- simulate time: staggered ends_at over the next lead .. lead+spread seconds --------------------------
    rng = random.Random(args.seed)
    order = grant_ids[:]
    rng.shuffle(order)
    base = timezone.now() + timedelta(seconds=args.lead)
    step = args.spread / max(1, args.n - 1)
    ends_at = {gid: base + timedelta(seconds=k * step) for k, gid in enumerate(order)}
    with transaction.atomic():
        for gid, moment in ends_at.items():
            Grant.objects.filter(pk=gid).update(ends_at=moment)
    for gid, moment in ends_at.items():
        tasks.grant_expire.apply_async(args=[gid], eta=moment)

    rows = Grant.objects.filter(pk__in=grant_ids).values_list("pk", "user__public_id", "role_id")
    identity_of = {pk: f"porte-{public_id.hex}" for pk, public_id, _ in rows}
    role_of = {pk: role_id for pk, _, role_id in rows}
    grant_of = {identity: pk for pk, identity in identity_of.items()}

    # --- poll IAM until every person's deny is in place ----------------------------------------------------
    pollers = [(role, aws.partner(role.partner.aws_account_id).iam) for role in roles]
    first_seen: dict[str, tuple[datetime, datetime, int]] = {}  # identity -> (seen, cutoff, role id)
    periods: list[float] = []
    interval = args.poll_ms / 1000
    last_end = max(ends_at.values())
    give_up = time.monotonic() + (last_end - timezone.now()).total_seconds() + args.timeout
    previous = time.monotonic()
    while len(first_seen) < len(grant_ids):
        started = time.monotonic()
        for role, iam in pollers:
            denied = denied_now(iam, role)
            seen = timezone.now()
            for identity, cutoff in denied:
                first_seen.setdefault(identity, (seen, cutoff, role.pk))
        if time.monotonic() > give_up:
            missing = len(grant_ids) - len(first_seen)
            raise BenchError(
                f"{missing} of {len(grant_ids)} denies not in place {args.timeout:g} s after the last "
                f"ends_at\n{env.worker_output()}"
            )
        now_mono = time.monotonic()
        periods.append(now_mono - previous)
        previous = now_mono
        time.sleep(max(0.0, interval - (now_mono - started)))

    # --- the sweeper's own view, from the database ---------------------------------------------------------
    def all_expired() -> bool:
        return not Grant.objects.filter(pk__in=grant_ids).exclude(status=Grant.Status.EXPIRED).exists()

    deadline = time.monotonic() + 10
    while not all_expired():
        if time.monotonic() > deadline:
            raise BenchError(
                f"denies are in place but grants are not all marked expired\n{env.worker_output()}"
            )
        time.sleep(0.05)
    db = {
        pk: (claimed, ended, cutoff)
        for pk, claimed, ended, cutoff in Grant.objects.filter(pk__in=grant_ids).values_list(
            "pk", "claimed_at", "ended_at", "deny_cutoff"
        )
    }

    lags, claim_lags, ended_lags = [], [], []
    wrong_role, early, short_cutoff = 0, 0, 0
    for identity, (seen, cutoff, role_id) in first_seen.items():
        gid = grant_of.get(identity)
        if gid is None:
            continue  # not one of ours (cannot happen on a fresh database)
        end = ends_at[gid]
        lags.append((seen - end).total_seconds())
        wrong_role += role_id != role_of[gid]
        early += seen < end
        short_cutoff += cutoff < end.replace(microsecond=0)
        claimed, ended, _ = db[gid]
        claim_lags.append((claimed - end).total_seconds())
        ended_lags.append((ended - end).total_seconds())

    sweeps = _sweep_runtimes(env)
    sizes = _inline_policy_sizes(pollers, first_seen, policies, aws)
    env.print_header(
        "expiry lag",
        [
            f"grants    : {args.n} active grants, {len(roles)} roles in {len(PARTNERS)} partner accounts, "
            f"one distinct user each",
            f"simulated : ends_at moved (queryset update) to now+{args.lead:g}s .. now+{args.lead + args.spread:g}s, "
            f"staggered, random order across roles",
            f"polling   : GetRolePolicy(porte-revocations) on {len(roles)} roles, loop every "
            f"{sum(periods) / len(periods) * 1000:.0f} ms on average (max {max(periods) * 1000:.0f} ms)",
            f"set-up    : {setup_s:.1f} s (partners, accounts, roles, users, {args.n} activations)",
        ],
    )
    print("lag after ends_at")
    s = print_row("deny in place on the role (moto poll)", lags)
    print_row("sweeper claimed the grant (DB)", claim_lags)
    print_row("grant marked expired (DB)", ended_lags)
    if sweeps:
        print_row("sweep task runtime (worker log)", sweeps)
    print(f"  min lag {min(lags):.3f} s")
    print()
    # IAM caps the aggregate of a role's inline policies at 10,240 non-whitespace characters; moto does not.
    worst = max(sizes, key=lambda row: row["total"])
    per_identity = worst["revocations"] / max(1, worst["identities"])
    print(
        f"largest role inline policies: {worst['total']} chars of IAM's {IAM_ROLE_INLINE_QUOTA} "
        f"({worst['revocations']} in porte-revocations: {worst['statements']} statements for "
        f"{worst['identities']} people, ~{per_identity:.0f} chars each; moto does not enforce the quota)"
    )
    print()
    print(
        f"checks: deny on the wrong role {wrong_role}, deny before ends_at {early}, "
        f"cutoff before ends_at {short_cutoff}"
    )
    print(
        f"target p95 <= {TARGET_P95_S:g} s: {'MET' if s['p95'] <= TARGET_P95_S else 'NOT MET'} "
        f"(p95 {s['p95']:.3f} s)"
    )
    return 0 if not (wrong_role or early or short_cutoff) else 1


def _inline_policy_sizes(pollers: Any, first_seen: Any, policies: Any, aws: Any) -> list[dict[str, int]]:
    """Per role: non-whitespace characters of its inline policies (what IAM's quota counts)."""
    rows = []
    for role, iam in pollers:
        sizes = {}
        for name in (policies.PERMISSIONS_POLICY_NAME, policies.REVOCATIONS_POLICY_NAME):
            document = _policy_document(
                iam.get_role_policy(RoleName=role.iam_name, PolicyName=name)["PolicyDocument"]
            )
            sizes[name] = len(re.sub(r"\s", "", json.dumps(document, separators=(",", ":"))))
            if name == policies.REVOCATIONS_POLICY_NAME:
                statements = len(document["Statement"])
        rows.append(
            {
                "total": sum(sizes.values()),
                "revocations": sizes[policies.REVOCATIONS_POLICY_NAME],
                "statements": statements,
                "identities": sum(1 for _, _, role_id in first_seen.values() if role_id == role.pk),
            }
        )
    return rows


def _sweep_runtimes(env: BenchEnv) -> list[float]:
    """Runtimes of sweeps that ended at least one grant, as the worker logged them (ms resolution)."""
    if not env.worker:
        return []
    text = env.worker.log_path.read_text(errors="replace")
    pattern = re.compile(r"grants\.tasks\.expiry_sweep\[[^\]]+\] succeeded in ([0-9.e-]+)s: (\d+)")
    return [float(t) for t, ended in pattern.findall(text) if int(ended) > 0]


if __name__ == "__main__":
    run(main)
