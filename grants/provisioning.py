"""Making IAM in partner accounts match the database: scoped roles and their revocation denies."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from django.db import transaction
from django.utils import timezone

from grants import policies
from grants.models import Grant, Role
from portal import aws
from portal.audit import audit_record
from portal.models import User

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

log = logging.getLogger(__name__)


def iam_max_session(role: Role) -> timedelta:
    """The IAM role's MaxSessionDuration (AWS accepts 1 h to 12 h)."""
    return max(timedelta(hours=1), role.max_duration)


def _iam(role: Role) -> IAMClient:
    if not role.partner.aws_account_id:
        raise aws.AwsRejected("NoAccount", f"Partner {role.partner.slug} has no dedicated AWS account yet.")
    return aws.partner(role.partner.aws_account_id).iam


def desired_role(role: Role) -> dict[str, Any]:
    return {
        "trust": policies.trust_policy(
            broker_arn=aws.broker_principal_arn(), external_id=role.partner.external_id
        ),
        "permissions": role.inline_policy,
        "boundary": role.permissions_boundary_arn,
        "max_session": int(iam_max_session(role).total_seconds()),
        "tags": [
            {"Key": "porte:partner", "Value": role.partner.slug},
            {"Key": "porte:role", "Value": role.slug},
        ],
    }


def role_provision(*, role: Role, actor: User | None = None) -> Role:
    """Create or update `porte-<slug>` to match the database. Idempotent: running it twice changes nothing."""
    iam = _iam(role)
    want = desired_role(role)
    try:
        arn = iam.get_role(RoleName=role.iam_name)["Role"]["Arn"]
        iam.update_assume_role_policy(RoleName=role.iam_name, PolicyDocument=json.dumps(want["trust"]))
        iam.update_role(RoleName=role.iam_name, MaxSessionDuration=want["max_session"])
        iam.put_role_permissions_boundary(RoleName=role.iam_name, PermissionsBoundary=want["boundary"])
        created = False
    except aws.AwsNotFound:
        arn = iam.create_role(
            RoleName=role.iam_name,
            Path="/porte/",
            AssumeRolePolicyDocument=json.dumps(want["trust"]),
            Description=f"Porte scoped role {role.slug} for partner {role.partner.slug}"[:1000],
            MaxSessionDuration=want["max_session"],
            PermissionsBoundary=want["boundary"],
            Tags=want["tags"],
        )["Role"]["Arn"]
        created = True
    iam.put_role_policy(
        RoleName=role.iam_name,
        PolicyName=policies.PERMISSIONS_POLICY_NAME,
        PolicyDocument=json.dumps(want["permissions"]),
    )
    with transaction.atomic():
        locked = Role.objects.select_for_update(of=("self",), no_key=True).get(pk=role.pk)
        locked.aws_role_arn = arn
        locked.provisioned_at = timezone.now()
        locked.save(update_fields=["aws_role_arn", "provisioned_at"])
        audit_record(
            action="role.provisioned",
            obj=locked,
            actor=actor,
            partner_id=locked.partner_id,
            data={"arn": arn, "created": created},
        )
    role.aws_role_arn, role.provisioned_at = locked.aws_role_arn, locked.provisioned_at
    return role


def role_check(role: Role) -> None:
    """Confirm the role exists in AWS (re-provisioning it if it went missing). Raises AwsError."""
    if not role.provisioned_at:
        role_provision(role=role)
        return
    iam = _iam(role)
    try:
        iam.get_role(RoleName=role.iam_name)
    except aws.AwsNotFound:
        log.warning(
            "role %s missing in account %s: re-provisioning", role.iam_name, role.partner.aws_account_id
        )
        role_provision(role=role)


def revocations_for(role: Role, now: datetime) -> list[tuple[str, datetime, int]]:
    """(source identity, cutoff, grant id) of every ended grant whose sessions could still be alive."""
    horizon = now - iam_max_session(role)
    rows = Grant.objects.filter(role=role, deny_cutoff__gt=horizon).values_list(
        "user__public_id", "deny_cutoff", "id"
    )
    return [(f"porte-{public_id.hex}", cutoff, grant_id) for public_id, cutoff, grant_id in rows if cutoff]


def revocations_document(role: Role, now: datetime) -> dict[str, Any] | None:
    horizon = now - iam_max_session(role)
    revoke_all = (
        role.sessions_revoked_before
        if role.sessions_revoked_before and role.sessions_revoked_before > horizon
        else None
    )
    budget = policies.INLINE_POLICIES_MAX_CHARS - policies.size(role.inline_policy) - 200
    return policies.role_revocations(revocations_for(role, now), revoke_all_before=revoke_all, budget=budget)


def role_put_revocations(role: Role, now: datetime) -> dict[str, Any] | None:
    """Write the role's revocation denies as the database says they are (or remove them when none is due)."""
    document = revocations_document(role, now)
    iam = _iam(role)
    if document is not None:
        iam.put_role_policy(
            RoleName=role.iam_name,
            PolicyName=policies.REVOCATIONS_POLICY_NAME,
            PolicyDocument=json.dumps(document, separators=(",", ":")),
        )
    else:
        with contextlib.suppress(aws.AwsNotFound):
            iam.delete_role_policy(RoleName=role.iam_name, PolicyName=policies.REVOCATIONS_POLICY_NAME)
    return document


def _document(value: Any) -> Any:
    """IAM returns policy documents URL-encoded; boto3 usually decodes them already."""
    if isinstance(value, str):
        return json.loads(unquote(value))
    return value


def role_reconcile(*, role: Role, now: datetime) -> list[str]:
    """Make IAM match the database for one role and return what had drifted (empty: nothing).

    Checked: the role exists; trust policy; permissions boundary; maximum session; inline policies (exactly
    `porte-permissions` and, when due, `porte-revocations`, with the documents Porte wrote); no attached managed
    policies; Porte's tags. The caller holds the role's IAM lease (grants/role_lease.py), so no sweeper writes
    denies meanwhile.
    """
    iam = _iam(role)
    want = desired_role(role)
    drift: list[str] = []
    try:
        actual = iam.get_role(RoleName=role.iam_name)["Role"]
    except aws.AwsNotFound:
        role_provision(role=role)
        role_put_revocations(role, now)
        return ["role_missing"]
    if _document(actual["AssumeRolePolicyDocument"]) != want["trust"]:
        drift.append("trust_policy")
        iam.update_assume_role_policy(RoleName=role.iam_name, PolicyDocument=json.dumps(want["trust"]))
    if (actual.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn") != want["boundary"]:
        drift.append("permissions_boundary")
        iam.put_role_permissions_boundary(RoleName=role.iam_name, PermissionsBoundary=want["boundary"])
    if actual.get("MaxSessionDuration") != want["max_session"]:
        drift.append("max_session_duration")
        iam.update_role(RoleName=role.iam_name, MaxSessionDuration=want["max_session"])
    for attached in iam.list_attached_role_policies(RoleName=role.iam_name)["AttachedPolicies"]:
        drift.append(f"attached_policy:{attached['PolicyName']}")
        iam.detach_role_policy(RoleName=role.iam_name, PolicyArn=attached["PolicyArn"])
    inline = set(iam.list_role_policies(RoleName=role.iam_name)["PolicyNames"])
    for name in sorted(inline - {policies.PERMISSIONS_POLICY_NAME, policies.REVOCATIONS_POLICY_NAME}):
        drift.append(f"inline_policy:{name}")
        iam.delete_role_policy(RoleName=role.iam_name, PolicyName=name)
    current = (
        _document(
            iam.get_role_policy(RoleName=role.iam_name, PolicyName=policies.PERMISSIONS_POLICY_NAME)[
                "PolicyDocument"
            ]
        )
        if policies.PERMISSIONS_POLICY_NAME in inline
        else None
    )
    if current != want["permissions"]:
        drift.append("permissions_policy")
        iam.put_role_policy(
            RoleName=role.iam_name,
            PolicyName=policies.PERMISSIONS_POLICY_NAME,
            PolicyDocument=json.dumps(want["permissions"]),
        )
    wanted_denies = revocations_document(role, now)
    actual_denies = (
        _document(
            iam.get_role_policy(RoleName=role.iam_name, PolicyName=policies.REVOCATIONS_POLICY_NAME)[
                "PolicyDocument"
            ]
        )
        if policies.REVOCATIONS_POLICY_NAME in inline
        else None
    )
    if actual_denies != wanted_denies:
        # Expected now and then: statements older than the maximum session are pruned here.
        drift.append(
            "revocations" if _has_more_denies(wanted_denies, actual_denies) else "revocations_pruned"
        )
        role_put_revocations(role, now)
    tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role.iam_name)["Tags"]}
    missing = [t for t in want["tags"] if tags.get(t["Key"]) != t["Value"]]
    if missing:
        drift.append("tags")
        iam.tag_role(RoleName=role.iam_name, Tags=missing)
    return drift


def _has_more_denies(wanted: dict[str, Any] | None, actual: dict[str, Any] | None) -> bool:
    """True when the database wants a deny that IAM lacks (a security-relevant drift, not mere pruning)."""

    def statements(doc: dict[str, Any] | None) -> list[str]:
        return [json.dumps(s, sort_keys=True) for s in (doc or {}).get("Statement", [])]

    return not set(statements(wanted)) <= set(statements(actual))
