"""Time to access: from submitting an auto-approved request to holding credentials that work.

    .venv/bin/python bench/time_to_access.py [--n 100] [--pool solo|prefork]

Porte path, per request (each by a distinct partner user, since one user holds one grant per role):
  t0  approvals.request_create(...) (the request; its activation task is queued on commit)
      poll the grant's status in the database every --poll-ms until `active` (a real Celery worker activates it)
      grants.services.minting.credential_mint(...)  (STS AssumeRole with SourceIdentity, tags, session policy)
  t1  GetCallerIdentity with those credentials against moto succeeded
Bare path, on the same moto server and role: boto3 AssumeRole (same ExternalId and SourceIdentity the role's trust
policy asks for) + GetCallerIdentity with the result. Both paths build their GetCallerIdentity client the same way.
The two paths alternate, so both see the same machine load. A few warm-up rounds (not counted) come first.

Figures only; no assertion. The target from the issue: p50(Porte) / p50(bare) <= 10.
Worker pool: `solo` is the default because it was faster than `prefork -c 2` for this one-at-a-time latency
(run with --pool prefork to compare).
"""

from __future__ import annotations

import time
from typing import Any

from _harness import (
    BenchEnv,
    BenchError,
    base_parser,
    build_roles,
    fmt_ms,
    make_members,
    print_row,
    request_access,
    run,
)

TARGET_P50_RATIO = 10.0


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0], default_n=100, default_pool="solo")
    parser.add_argument("--warmup", type=int, default=5, help="uncounted rounds first (default 5)")
    parser.add_argument(
        "--poll-ms", type=float, default=5.0, help="grant status poll interval (default 5 ms)"
    )
    parser.add_argument("--activation-timeout", type=float, default=30.0, help="per request (default 30 s)")
    args = parser.parse_args()
    if args.n < 1:
        parser.error("--n must be at least 1")

    with BenchEnv("time_to_access") as env:
        env.start_worker(pool=args.pool, beat=False)
        return measure(env, args)


def measure(env: BenchEnv, args: Any) -> int:
    import boto3
    import botocore.session
    from botocore.config import Config

    from grants.models import Grant
    from grants.services import minting

    t_setup = time.perf_counter()
    (role,) = build_roles(["bench"])
    partner = role.partner
    total = args.warmup + args.n
    porte_users = make_members(partner, total, "porte")
    bare_users = make_members(partner, total, "bare")
    setup_s = time.perf_counter() - t_setup

    config = Config(region_name="eu-west-1", retries={"max_attempts": 1})
    # One botocore session for every GetCallerIdentity client (Porte's and bare), so client creation costs the
    # same on both paths.
    caller_session = boto3.session.Session(botocore_session=botocore.session.get_session())
    bare_sts = boto3.client(
        "sts",
        endpoint_url=env.moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )

    def caller_identity(key: str, secret: str, token: str) -> str:
        sts = caller_session.client(
            "sts",
            endpoint_url=env.moto_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=config,
        )
        arn = str(sts.get_caller_identity()["Arn"])
        if f":assumed-role/{role.iam_name}/" not in arn:
            raise BenchError(f"credentials act as {arn}, not as {role.iam_name}")
        return arn

    poll_s = args.poll_ms / 1000

    def porte_round(user: Any) -> dict[str, float]:
        t0 = time.perf_counter()
        grant = request_access(user, role)
        t_submitted = time.perf_counter()
        deadline = t_submitted + args.activation_timeout
        while True:
            status = Grant.objects.filter(pk=grant.pk).values_list("status", flat=True).get()
            if status == Grant.Status.ACTIVE:
                break
            if status != Grant.Status.PENDING:
                reason = Grant.objects.get(pk=grant.pk).failure_reason
                raise BenchError(f"grant {grant.pk} went {status}: {reason}\n{env.worker_output()}")
            if time.perf_counter() > deadline:
                raise BenchError(
                    f"grant {grant.pk} not active after {args.activation_timeout:g} s\n{env.worker_output()}"
                )
            time.sleep(poll_s)
        t_active = time.perf_counter()
        minted = minting.credential_mint(grant_id=grant.pk, user=user, kind="cli")
        t_minted = time.perf_counter()
        c = minted.credentials
        caller_identity(c.access_key_id, c.secret_access_key, c.session_token)
        t_usable = time.perf_counter()
        return {
            "total": t_usable - t0,
            "submit": t_submitted - t0,
            "activate": t_active - t_submitted,
            "mint": t_minted - t_active,
            "identity": t_usable - t_minted,
            "grant": grant.pk,
        }

    def bare_round(i: int, user: Any) -> dict[str, float]:
        t0 = time.perf_counter()
        response = bare_sts.assume_role(
            RoleArn=role.aws_role_arn,
            RoleSessionName=f"bench-bare-{i}",
            DurationSeconds=900,
            ExternalId=partner.external_id,
            SourceIdentity=user.source_identity,
        )
        t_assumed = time.perf_counter()
        c = response["Credentials"]
        caller_identity(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
        t_usable = time.perf_counter()
        return {"total": t_usable - t0, "assume": t_assumed - t0, "identity": t_usable - t_assumed}

    porte: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    first: dict[str, float] = {}
    t_run = time.perf_counter()
    for i in range(total):
        p = porte_round(porte_users[i])
        b = bare_round(i, bare_users[i])
        if i == 0:
            first = p
        if i >= args.warmup:
            porte.append(p)
            bare.append(b)
    run_s = time.perf_counter() - t_run

    # The worker's own view: request created -> grant activated (both timestamps written in the database).
    measured_ids = [p["grant"] for p in porte]
    worker_side = [
        (activated - created).total_seconds()
        for activated, created in Grant.objects.filter(pk__in=measured_ids).values_list(
            "activated_at", "request__created_at"
        )
    ]

    env.print_header(
        "time to access",
        [
            f"requests  : {args.n} measured (+{args.warmup} warm-up), auto-approved, one distinct user each, "
            f"one role ({role.aws_role_arn})",
            f"polling   : grant status every {args.poll_ms:g} ms",
            f"set-up    : {setup_s:.1f} s (partner, account, role, {2 * total} users); rounds {run_s:.1f} s",
        ],
    )
    print("Porte: request_create -> active (worker) -> credential_mint -> GetCallerIdentity OK")
    sp = print_row("total (time to access)", [p["total"] for p in porte])
    print_row("  submit (request + commit + queue)", [p["submit"] for p in porte])
    print_row("  queued -> seen active (poll)", [p["activate"] for p in porte])
    print_row("  credential_mint", [p["mint"] for p in porte])
    print_row("  GetCallerIdentity", [p["identity"] for p in porte])
    print_row("worker: request created -> activated", worker_side)
    print(f"  first (cold) request, not counted: {fmt_ms(first['total']).strip()}")
    print()
    print("Bare boto3: AssumeRole -> GetCallerIdentity OK (same moto, same role)")
    sb = print_row("total", [b["total"] for b in bare])
    print_row("  AssumeRole", [b["assume"] for b in bare])
    print_row("  GetCallerIdentity", [b["identity"] for b in bare])
    print()
    p50_ratio = sp["p50"] / sb["p50"]
    p95_ratio = sp["p95"] / sb["p95"]
    met = p50_ratio <= TARGET_P50_RATIO
    print(f"ratio Porte/bare: p50 {p50_ratio:.2f}x   p95 {p95_ratio:.2f}x")
    print(f"target p50 ratio <= {TARGET_P50_RATIO:g}: {'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    run(main)
