"""Revoke latency: how long after an early revoke the deny naming that person is on the role; and how long
audit events wait to be sealed into the chain meanwhile.

    .venv/bin/python bench/revoke_latency.py [--n 40] [--roles 4] [--pool prefork] [--gap-ms 100]

Set-up: two partners (each a dedicated moto account), `--roles` provisioned roles between them, `--n` users each
granted one role through the real request path (a Celery worker activates the grants). The worker runs with
embedded beat; the expiry sweeper is set to run only every 60 s, so what ends access here is the revocation
task queued on commit (the `revocations` queue), not the safety net.

Measurement: this process revokes the grants one by one (`grant_revoke`, as the web view does, `--gap-ms`
apart), and polls moto's IAM `GetRolePolicy(porte-revocations)` on every role in a loop; lag = the first
response naming the person - the revoke's commit. Meanwhile it samples the audit chain's unsealed tail
(`portal.audit.unsealed`) every poll: the oldest unsealed event's age is the sealing lag (the sealer is asked on
commit and runs on beat every PORTE_AUDIT_SEAL_SECONDS as the safety net). At the end it checks the whole chain.

Figures only; no assertion. Targets: p95 revoke -> deny <= 100 ms; unsealed tail never older than a few seconds.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
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

PARTNERS = ("bench-a", "bench-b")


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0], default_n=40, default_pool="prefork")
    parser.add_argument("--roles", type=int, default=4, help="roles, split between two partners (default 4)")
    parser.add_argument(
        "--gap-ms", type=float, default=100.0, help="time between two revokes (default 100 ms)"
    )
    parser.add_argument("--poll-ms", type=float, default=20.0, help="IAM poll period (default 20 ms)")
    args = parser.parse_args()
    os.environ["PORTE_AUDIT_SEAL_SECONDS"] = "2"
    with BenchEnv("revoke_latency", sweep_seconds=60.0) as env:
        env.start_worker(pool=args.pool, beat=True)
        return measure(env, args)


def measure(env: BenchEnv, args: Any) -> int:
    from django.db.models import Count
    from django.utils import timezone

    from grants.models import Grant
    from grants.services import revocation
    from portal import aws
    from portal.audit import seal, unsealed, verify_chain

    per_partner = -(-args.roles // len(PARTNERS))
    roles = build_roles(PARTNERS, [f"role{k}" for k in range(1, per_partner)])[: args.roles]
    grants = []
    for i in range(args.n):
        role = roles[i % len(roles)]
        [user] = make_members(role.partner, 1, f"{role.partner.slug}-r{i}")
        grants.append(request_access(user, role))
    ids = [g.pk for g in grants]
    deadline = time.monotonic() + 60 + args.n
    while dict(Grant.objects.filter(pk__in=ids).order_by().values_list("status").annotate(n=Count("id"))).get(
        Grant.Status.ACTIVE, 0
    ) < len(ids):
        if time.monotonic() > deadline:
            raise BenchError(f"not every grant became active\n{env.worker_output()}")
        time.sleep(0.05)
    grants = list(Grant.objects.filter(pk__in=ids).select_related("user", "role__partner"))
    pollers = [(role, aws.partner(role.partner.aws_account_id).iam) for role in roles]

    revoked_at: dict[str, datetime] = {}
    first_seen: dict[str, datetime] = {}
    tail_ages: list[float] = []
    tail_sizes: list[int] = []
    next_revoke = time.monotonic()
    pending = list(grants)
    give_up = time.monotonic() + args.n * args.gap_ms / 1000 + 60
    while len(first_seen) < len(grants):
        if pending and time.monotonic() >= next_revoke:
            grant = pending.pop(0)
            revocation.grant_revoke(grant=grant, reason="bench: done early", actor=grant.user)
            revoked_at[grant.user.source_identity] = timezone.now()
            next_revoke = time.monotonic() + args.gap_ms / 1000
        for role, iam in pollers:
            denied = denied_now(iam, role)
            seen = timezone.now()
            for identity, _ in denied:
                if identity in revoked_at:
                    first_seen.setdefault(identity, seen)
        tail = unsealed()
        tail_sizes.append(tail.events)
        tail_ages.append(tail.oldest_age.total_seconds() if tail.oldest_age else 0.0)
        if time.monotonic() > give_up:
            raise BenchError(f"{len(grants) - len(first_seen)} denies never appeared\n{env.worker_output()}")
        time.sleep(args.poll_ms / 1000)

    lags = [(first_seen[identity] - at).total_seconds() for identity, at in revoked_at.items()]
    deadline = time.monotonic() + 30
    while Grant.objects.filter(pk__in=ids).exclude(status=Grant.Status.REVOKED).exists():
        if time.monotonic() > deadline:
            raise BenchError(f"denies in place but grants not all revoked\n{env.worker_output()}")
        time.sleep(0.05)
    ended = dict(Grant.objects.filter(pk__in=ids).values_list("user__public_id", "ended_at"))
    ended_lags = [
        (ended[grant.user.public_id] - revoked_at[grant.user.source_identity]).total_seconds()
        for grant in grants
    ]
    seal()
    broken = verify_chain()
    env.print_header(
        "revoke latency",
        [
            f"grants    : {args.n} active grants, {len(roles)} roles in {len(PARTNERS)} partner accounts",
            f"revokes   : one every {args.gap_ms:g} ms from this process; sweeper every 60 s (not the path)",
            f"polling   : GetRolePolicy(porte-revocations) on {len(roles)} roles, every {args.poll_ms:g} ms",
        ],
    )
    print("after the revoke committed")
    deny = print_row("deny in place on the role (moto poll)", lags)
    print_row("grant marked revoked (DB)", ended_lags)
    print("audit chain while revoking")
    print_row("oldest unsealed event's age", tail_ages)
    met = "MET" if deny["p95"] <= 0.1 else "NOT MET"
    print(f"  target p95 revoke -> deny <= 100 ms: {met} ({deny['p95'] * 1000:.1f} ms)")
    print(
        f"  unsealed events at most {max(tail_sizes)}; chain {'intact' if broken is None else f'BROKEN at {broken}'}"
    )
    return 0


if __name__ == "__main__":
    run(main)
