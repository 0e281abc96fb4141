"""Making IAM in partner accounts match the database: scoped roles and their revocation denies."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from grants import policies
from grants.models import Grant, Role
from portal import aws
from portal.audit import audit_record
from portal.models import User

log = logging.getLogger(__name__)


def iam_max_session(role: Role) -> timedelta:
    """The IAM role's MaxSessionDuration (AWS accepts 1 h to 12 h)."""
    return max(timedelta(hours=1), role.max_duration)


def _iam(role: Role) -> Any:
    if not role.partner.aws_account_id:
        raise aws.AwsRejected("NoAccount", f"Partner {role.partner.slug} has no dedicated AWS account yet.")
    return aws.partner_client("iam", role.partner.aws_account_id)


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
    with aws.aws_errors():
        try:
            arn = iam.get_role(RoleName=role.iam_name)["Role"]["Arn"]
            iam.update_assume_role_policy(RoleName=role.iam_name, PolicyDocument=json.dumps(want["trust"]))
            iam.update_role(RoleName=role.iam_name, MaxSessionDuration=want["max_session"])
            iam.put_role_permissions_boundary(RoleName=role.iam_name, PermissionsBoundary=want["boundary"])
            created = False
        except iam.exceptions.NoSuchEntityException:
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
        locked = Role.objects.select_for_update().get(pk=role.pk)
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
    with aws.aws_errors():
        try:
            iam.get_role(RoleName=role.iam_name)
        except iam.exceptions.NoSuchEntityException:
            log.warning(
                "role %s missing in account %s: re-provisioning", role.iam_name, role.partner.aws_account_id
            )
            role_provision(role=role)


def revocations_for(role: Role, now: datetime) -> list[tuple[str, datetime]]:
    """(source identity, cutoff) of every ended grant whose sessions could still be alive."""
    horizon = now - iam_max_session(role)
    rows = Grant.objects.filter(role=role, deny_cutoff__gt=horizon).values_list(
        "user__public_id", "deny_cutoff"
    )
    return [(f"porte-{public_id.hex}", cutoff) for public_id, cutoff in rows if cutoff is not None]


def role_put_revocations(role: Role, now: datetime) -> dict[str, Any] | None:
    """Write the role's revocation denies as the database says they are (or remove them when none is due)."""
    document = policies.revocation_policy(revocations_for(role, now))
    iam = _iam(role)
    with aws.aws_errors():
        if document is not None:
            iam.put_role_policy(
                RoleName=role.iam_name,
                PolicyName=policies.REVOCATIONS_POLICY_NAME,
                PolicyDocument=json.dumps(document, separators=(",", ":")),
            )
        else:
            with contextlib.suppress(iam.exceptions.NoSuchEntityException):
                iam.delete_role_policy(RoleName=role.iam_name, PolicyName=policies.REVOCATIONS_POLICY_NAME)
    return document
