"""Four-eyes changes of a role: its permissions (inline policy, boundary), maximum duration, eligibility and
approval policy are changed only when a second staff member, not the author, approves. The change is then
applied through the ordinary services (role_update provisions IAM on commit)."""

from __future__ import annotations

import difflib
import json
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalPolicy, RoleChange
from approvals.services import NotAnApprover, SelfApprovalRefused
from grants import limits
from grants.models import Role
from grants.services import role_setup
from portal.audit import audit_record
from portal.models import User
from portal.notifications import notify

# Changing any of these needs a second pair of eyes; name and description apply at once.
FOUR_EYES_KEYS = (
    "inline_policy",
    "permissions_boundary_arn",
    "max_duration_s",
    "eligible_groups",
    "approval",
)


def role_snapshot(role: Role) -> dict[str, Any]:
    policy = ApprovalPolicy.objects.filter(role=role).first()
    return {
        "name": role.name,
        "description": role.description,
        "inline_policy": role.inline_policy,
        "permissions_boundary_arn": role.permissions_boundary_arn,
        "max_duration_s": int(role.max_duration.total_seconds()),
        "eligible_groups": sorted(role.eligibilities.exclude(group="").values_list("group", flat=True)),
        "approval": policy.as_dict() if policy else None,
    }


def _checked_approval(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    errors: dict[str, str] = {}
    required = int(data.get("approvals_required", 0))
    if not 0 <= required <= 5:
        errors["approvals_required"] = "Between 0 (auto-approve) and 5 approvers."
    if data.get("approvers") not in ApprovalPolicy.Approvers.values:
        errors["approvers"] = "Choose who approves."
    ttl = int(data.get("pending_ttl_s", 86400))
    if not 300 <= ttl <= 14 * 86400:
        errors["pending_ttl_s"] = "Pending requests lapse after 5 minutes to 14 days."
    if bool(data.get("required_claim")) != bool(data.get("required_claim_value")):
        errors["required_claim_value"] = "Give both the claim and the value it must have, or neither."
    if errors:
        raise ValidationError(errors)
    return {**data, "approvals_required": required, "pending_ttl_s": ttl}


@transaction.atomic
def role_change_propose(
    *, role: Role, author: User, changes: dict[str, Any], reason: str = ""
) -> RoleChange | None:
    """Propose new values for some of the role's fields (keys of role_snapshot).

    A change of name/description only is applied at once (None is returned); anything else becomes a pending
    RoleChange that another staff member must approve.
    """
    role = Role.objects.select_for_update(of=("self",), no_key=True).select_related("partner").get(pk=role.pk)
    before = role_snapshot(role)
    after = {**before, **{k: v for k, v in changes.items() if k in before}}
    after["eligible_groups"] = sorted(set(after["eligible_groups"]))
    after["approval"] = _checked_approval(after["approval"])
    role_setup._checked_role_fields(
        inline_policy=after["inline_policy"],
        permissions_boundary_arn=after["permissions_boundary_arn"],
        max_duration=timedelta(seconds=after["max_duration_s"]),
    )
    if after == before:
        raise ValidationError("Nothing would change.")
    if all(after[k] == before[k] for k in FOUR_EYES_KEYS):
        _apply(role, after, actor=author)
        return None
    change = RoleChange.objects.create(
        role=role, author=author, before=before, after=after, reason=reason.strip(), created_at=timezone.now()
    )
    audit_record(
        action="role.change_proposed",
        obj=change,
        actor=author,
        partner_id=role.partner_id,
        data={"role": role.slug, "fields": [k for k in after if after[k] != before[k]]},
    )
    notify(
        event="role.change_proposed",
        subject=f"Role change to approve: {role.name} ({role.partner.name})",
        body=(
            f"{author.display_name} proposes to change {role.name} "
            f"({', '.join(k for k in after if after[k] != before[k])}). "
            f"A second staff member must approve it at /staff/changes/{change.pk}/"
        ),
        recipients=User.objects.filter(is_staff=True, is_active=True).exclude(pk=author.pk).exclude(email=""),
        partner_id=role.partner_id,
    )
    return change


@transaction.atomic
def role_create_with_four_eyes(
    *, eligible_groups: list[str], actor: User, **fields: Any
) -> tuple[Role, RoleChange | None]:
    """Create a role (provisioned in IAM at once) whom nobody may request yet: its eligibility is proposed as a
    change that a second staff member approves, as for any later change of eligibility."""
    role = role_setup.role_create(eligible_groups=[], actor=actor, **fields)
    if not eligible_groups:
        return role, None
    change = role_change_propose(
        role=role, author=actor, changes={"eligible_groups": eligible_groups}, reason="New role"
    )
    return role, change


def _apply(role: Role, after: dict[str, Any], *, actor: User) -> None:
    role_setup.role_update(
        role=role,
        name=after["name"],
        description=after["description"],
        inline_policy=after["inline_policy"],
        permissions_boundary_arn=after["permissions_boundary_arn"],
        max_duration=timedelta(seconds=after["max_duration_s"]),
        eligible_groups=after["eligible_groups"],
        actor=actor,
    )
    approval = after["approval"]
    current = ApprovalPolicy.objects.filter(role=role).first()
    if approval is None:
        if current is not None:
            current.delete()
        return
    fields = {k: v for k, v in approval.items() if k != "pending_ttl_s"}
    ApprovalPolicy.objects.update_or_create(
        role=role, defaults={**fields, "pending_ttl": timedelta(seconds=approval["pending_ttl_s"])}
    )


def _locked_pending(change_id: int, actor: User) -> RoleChange:
    if not actor.is_staff:
        raise NotAnApprover("No such change.")
    change = (
        RoleChange.objects.select_for_update(of=("self",), no_key=True)
        .select_related("role__partner", "author")
        .get(pk=change_id)
    )
    if change.status != RoleChange.Status.PENDING:
        raise ValidationError(f"This change is {change.get_status_display().lower()} already.")
    return change


@transaction.atomic
def role_change_approve(*, change_id: int, approver: User) -> RoleChange:
    """The second pair of eyes: apply the change (IAM follows on commit). The author cannot approve it."""
    change = _locked_pending(change_id, approver)
    if change.author_id == approver.pk:
        raise SelfApprovalRefused("You proposed this change: another staff member must approve it.")
    role = Role.objects.select_for_update(of=("self",), no_key=True).get(pk=change.role_id)
    now = timezone.now()
    if role_snapshot(role) != change.before:
        change.status, change.decided_by, change.decided_at = RoleChange.Status.STALE, approver, now
        change.save(update_fields=["status", "decided_by", "decided_at"])
        audit_record(action="role.change_stale", obj=change, actor=approver, partner_id=role.partner_id)
        return change
    _apply(role, change.after, actor=approver)
    change.status, change.decided_by, change.decided_at = RoleChange.Status.APPLIED, approver, now
    change.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(
        action="role.change_approved",
        obj=change,
        actor=approver,
        partner_id=role.partner_id,
        data={"role": role.slug, "author": str(change.author.public_id)},
    )
    return change


@transaction.atomic
def role_change_reject(*, change_id: int, approver: User, reason: str) -> RoleChange:
    """Reject (or, by its author, withdraw) a pending change; nothing is applied."""
    change = _locked_pending(change_id, approver)
    reason = reason.strip()
    if len(reason) < 5:
        raise ValidationError({"reason": "Say why (at least 5 characters): the author is told."})
    if errors := limits.too_long(reason=reason):
        raise ValidationError(errors)
    change.status, change.decided_by, change.decided_at = RoleChange.Status.REJECTED, approver, timezone.now()
    change.decision_reason = reason
    change.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    audit_record(
        action="role.change_rejected",
        obj=change,
        actor=approver,
        partner_id=change.role.partner_id,
        data={"reason": change.decision_reason},
    )
    notify(
        event="role.change_rejected",
        subject=f"Your change to {change.role.name} was rejected",
        body=f"Change #{change.pk} to {change.role.name} was rejected: {change.decision_reason}",
        recipients=[change.author],
        partner_id=change.role.partner_id,
    )
    return change


def change_diff(change: RoleChange) -> list[str]:
    """A unified diff of the role as it was and as proposed (policy document included), for the reviewer."""

    def lines(value: dict[str, Any]) -> list[str]:
        return json.dumps(value, indent=2, sort_keys=True).splitlines()

    return list(
        difflib.unified_diff(lines(change.before), lines(change.after), "current", "proposed", lineterm="")
    )
