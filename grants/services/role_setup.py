"""Creating and changing roles (validated, linted, audited) and queueing their provisioning in IAM."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction

from grants import authoring, limits
from grants.models import Eligibility, Role
from partners.models import Partner
from portal import queue
from portal.audit import audit_record
from portal.models import User


def _checked_role_fields(
    *, inline_policy: dict[str, object], permissions_boundary_arn: str, max_duration: timedelta
) -> None:
    errors: dict[str, str] = {}
    try:
        authoring.policy_check(inline_policy)
    except authoring.PolicyError as exc:
        errors["inline_policy"] = str(exc)
    if not permissions_boundary_arn.startswith("arn:aws:iam::") or ":policy/" not in permissions_boundary_arn:
        errors["permissions_boundary_arn"] = "A permissions boundary (an IAM policy ARN) is required."
    if not limits.ROLE_MIN <= max_duration <= limits.ROLE_MAX:
        errors["max_duration"] = (
            f"The maximum duration must be between {limits.ROLE_MIN_MINUTES} and {limits.ROLE_MAX_MINUTES} minutes."
        )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def role_create(
    *,
    partner: Partner,
    slug: str,
    name: str,
    inline_policy: dict[str, object],
    permissions_boundary_arn: str,
    max_duration: timedelta,
    description: str = "",
    eligible_groups: list[str] | None = None,
    actor: User | None = None,
) -> Role:
    """Define a scoped role; it is provisioned in the partner's account on commit (idempotently)."""
    _checked_role_fields(
        inline_policy=inline_policy,
        permissions_boundary_arn=permissions_boundary_arn,
        max_duration=max_duration,
    )
    if Role.objects.filter(partner=partner, slug=slug).exists():
        raise ValidationError({"slug": f"{partner.name} has a role {slug!r} already."})
    role = Role.objects.create(
        partner=partner,
        slug=slug,
        name=name,
        description=description,
        inline_policy=inline_policy,
        permissions_boundary_arn=permissions_boundary_arn,
        max_duration=max_duration,
    )
    for group in eligible_groups or []:
        Eligibility.objects.create(role=role, group=group)
    audit_record(
        action="role.created",
        obj=role,
        actor=actor,
        partner_id=partner.pk,
        data={
            "slug": slug,
            "eligible_groups": eligible_groups or [],
            "max_duration_s": int(max_duration.total_seconds()),
            "policy": inline_policy,
        },
    )
    _queue_provisioning(role)
    return role


@transaction.atomic
def role_update(
    *,
    role: Role,
    name: str,
    description: str,
    inline_policy: dict[str, object],
    permissions_boundary_arn: str,
    max_duration: timedelta,
    eligible_groups: list[str],
    actor: User | None = None,
) -> Role:
    """Change a role's definition; IAM follows on commit. Sessions already issued keep the old rights until
    they expire (revoke them if the change is urgent)."""
    _checked_role_fields(
        inline_policy=inline_policy,
        permissions_boundary_arn=permissions_boundary_arn,
        max_duration=max_duration,
    )
    role = Role.objects.select_for_update(of=("self",), no_key=True).get(pk=role.pk)
    before = {
        "policy": role.inline_policy,
        "boundary": role.permissions_boundary_arn,
        "max_duration_s": int(role.max_duration.total_seconds()),
        "eligible_groups": sorted(role.eligibilities.exclude(group="").values_list("group", flat=True)),
    }
    role.name, role.description, role.inline_policy = name, description, inline_policy
    role.permissions_boundary_arn, role.max_duration = permissions_boundary_arn, max_duration
    role.save()
    role.eligibilities.exclude(group="").exclude(group__in=eligible_groups).delete()
    for group in eligible_groups:
        Eligibility.objects.get_or_create(role=role, group=group)
    after = {
        "policy": inline_policy,
        "boundary": permissions_boundary_arn,
        "max_duration_s": int(max_duration.total_seconds()),
        "eligible_groups": sorted(eligible_groups),
    }
    audit_record(
        action="role.updated",
        obj=role,
        actor=actor,
        partner_id=role.partner_id,
        data={k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]},
    )
    _queue_provisioning(role)
    return role


def _queue_provisioning(role: Role) -> None:
    if not role.partner.aws_account_id:
        return  # provisioned when the partner's account exists (the reconciler picks it up)
    queue.on_commit("grants.tasks.role_provision", role.pk)
