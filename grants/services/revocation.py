"""Ending access early: one grant, every session of a role, a partner suspended or offboarded, an eligibility or a
membership removed. Grants are claimed at once (refused by Porte from that instant); the deny follows on the
`revocations` queue."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from grants import policies
from grants.models import AccessRequest, Eligibility, Grant, Role
from grants.services.expiry import queue_role_endings
from partners import services as partner_services
from partners.models import Membership, Partner
from portal.audit import audit_record
from portal.models import User


@transaction.atomic
def grant_revoke(*, grant: Grant, reason: str, actor: User | None = None) -> Grant:
    """End a grant before its time. An active grant is claimed (revoking) with a deny cutoff now; the deny is
    put on the role by a task queued on commit (and by the sweeper if that task is lost), and only then is the
    grant marked revoked. A grant that never became active is revoked at once: no session exists."""
    grant = Grant.objects.select_for_update(of=("self",), no_key=True).select_related("role").get(pk=grant.pk)
    now = timezone.now()
    if grant.status == Grant.Status.PENDING:
        grant.status, grant.ended_at = Grant.Status.REVOKED, now
        grant.save(update_fields=["status", "ended_at"])
        audit_record(
            action="grant.revoked",
            obj=grant,
            actor=actor,
            partner_id=grant.role.partner_id,
            data={"reason": reason, "never_active": True},
        )
    elif grant.status == Grant.Status.ACTIVE:
        grant.status, grant.deny_cutoff, grant.claimed_at = (
            Grant.Status.REVOKING,
            policies.ceil_to_second(now),
            now,
        )
        grant.save(update_fields=["status", "deny_cutoff", "claimed_at"])
        audit_record(
            action="grant.revoke_requested",
            obj=grant,
            actor=actor,
            partner_id=grant.role.partner_id,
            data={"reason": reason},
        )
        queue_role_endings(grant.role_id)
    return grant


@transaction.atomic
def role_revoke_all_sessions(*, role: Role, reason: str, actor: User | None = None) -> Role:
    """Emergency: deny every session of the role issued until now, whoever holds it. Grants stay as they are;
    holders of active grants can mint new sessions (revoke their grants too if that is the intent)."""
    role = Role.objects.select_for_update(of=("self",), no_key=True).get(pk=role.pk)
    role.sessions_revoked_before = policies.ceil_to_second(timezone.now())
    role.save(update_fields=["sessions_revoked_before"])
    audit_record(
        action="role.sessions_revoked",
        obj=role,
        actor=actor,
        partner_id=role.partner_id,
        data={"before": role.sessions_revoked_before.isoformat(), "reason": reason},
    )
    queue_role_endings(role.pk)
    return role


@transaction.atomic
def partner_suspend(*, partner: Partner, reason: str, actor: User | None = None) -> Partner:
    """Refuse every sign-in, end every session and revoke every open grant of the partner."""
    partner = partner_services.partner_set_status(
        partner=partner, status=Partner.Status.SUSPENDED, reason=reason, actor=actor
    )
    _revoke_open_grants(partner, reason=f"partner suspended: {reason}", actor=actor)
    return partner


@transaction.atomic
def partner_offboard(*, partner: Partner, reason: str, actor: User | None = None) -> Partner:
    """Suspension plus: memberships closed, IdP removed from service. History (grants, audit) is kept."""
    partner = partner_services.partner_set_status(
        partner=partner, status=Partner.Status.OFFBOARDED, reason=reason, actor=actor
    )
    _revoke_open_grants(partner, reason=f"partner offboarded: {reason}", actor=actor)
    return partner


def _revoke_open_grants(partner: Partner, *, reason: str, actor: User | None) -> None:
    for grant in Grant.objects.filter(
        role__partner=partner, status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE]
    ):
        grant_revoke(grant=grant, reason=reason, actor=actor)


def _still_eligible(user_id: int, role: Role, groups: list[str]) -> bool:
    eligible = Q(user_id=user_id)
    if groups:
        eligible |= Q(group__in=groups)
    return Eligibility.objects.filter(eligible, role=role).exists()


@transaction.atomic
def eligibility_revoke(*, eligibility_id: int, reason: str, actor: User | None = None) -> list[Grant]:
    """Remove an eligibility (one person's, or an IdP group's) and revoke the open grants it was the only reason
    for, with the deny on the role (put on commit). A person still eligible another way keeps their grant.
    Idempotent: an eligibility already gone does nothing. Returns the grants revoked."""
    eligibility = (
        Eligibility.objects.select_for_update(of=("self",))
        .select_related("role", "user")
        .filter(pk=eligibility_id)
        .first()
    )
    if eligibility is None:
        return []
    role = eligibility.role
    open_grants = Grant.objects.filter(role=role, status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE])
    if eligibility.user_id is not None:
        open_grants = open_grants.filter(user_id=eligibility.user_id)
    groups = dict(
        Membership.objects.filter(user_id__in=open_grants.values("user_id")).values_list("user_id", "groups")
    )
    candidates = [
        grant
        for grant in open_grants
        if eligibility.user_id is not None or eligibility.group in (groups.get(grant.user_id) or [])
    ]
    data = {
        "role": role.slug,
        "user": eligibility.user.source_identity if eligibility.user else None,
        "group": eligibility.group,
        "reason": reason,
    }
    eligibility.delete()
    revoked = [
        grant_revoke(grant=grant, reason=reason, actor=actor)
        for grant in candidates
        if not _still_eligible(grant.user_id, role, groups.get(grant.user_id) or [])
    ]
    audit_record(
        action="eligibility.revoked",
        obj=role,
        actor=actor,
        partner_id=role.partner_id,
        data={**data, "grants_revoked": [g.pk for g in revoked]},
    )
    return revoked


@transaction.atomic
def membership_revoke(*, membership_id: int, reason: str, actor: User | None = None) -> list[Grant]:
    """End a person's place in their organisation (partners.services.membership_end: sign-ins refused, sessions
    and tokens ended) and revoke their open grants with the deny on the roles. Idempotent."""
    membership = Membership.objects.get(pk=membership_id)
    partner_services.membership_end(membership=membership, reason=reason, actor=actor)
    _close_pending_requests(membership, reason=reason, actor=actor)
    return [
        grant_revoke(grant=grant, reason=reason, actor=actor)
        for grant in Grant.objects.filter(
            user_id=membership.user_id,
            role__partner_id=membership.partner_id,
            status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE],
        )
    ]


def _close_pending_requests(membership: Membership, *, reason: str, actor: User | None) -> None:
    """Requests still waiting for approvers end with the person's place: nobody is asked to decide them."""
    now = timezone.now()
    for request in AccessRequest.objects.select_for_update(of=("self",), no_key=True).filter(
        requester_id=membership.user_id,
        role__partner_id=membership.partner_id,
        status=AccessRequest.Status.PENDING,
    ):
        request.status, request.decided_at = AccessRequest.Status.REFUSED, now
        request.decision_reason = f"The requester's place ended: {reason}"[:2000]
        request.save(update_fields=["status", "decided_at", "decision_reason"])
        audit_record(
            action="request.refused",
            obj=request,
            actor=actor,
            partner_id=membership.partner_id,
            data={
                "role_id": request.role_id,
                "condition": "membership_ended",
                "message": request.decision_reason,
            },
        )


@transaction.atomic
def membership_groups_change(*, membership_id: int, groups: list[str], reason: str) -> list[Grant]:
    """The person's groups are now `groups` (their partner's directory said so): open grants that only a group
    they left allowed are revoked, with the deny on the roles (put on commit). Returns the grants revoked."""
    membership = Membership.objects.get(pk=membership_id)
    if not partner_services.membership_groups_set(membership=membership, groups=groups, reason=reason):
        return []
    return [
        grant_revoke(grant=grant, reason=f"{reason}: no longer eligible", actor=None)
        for grant in Grant.objects.filter(
            user_id=membership.user_id,
            role__partner_id=membership.partner_id,
            status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE],
        ).select_related("role")
        if not _still_eligible(membership.user_id, grant.role, groups)
    ]
