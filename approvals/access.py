"""Who may see requests, reviews and changes; missing and forbidden both answer 404."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from approvals.models import BreakGlassReview, RoleChange
from approvals.services import approvers_for
from grants.models import AccessRequest, Role
from portal.access import actor_of, found_or_404, scoped
from portal.models import User


def _approvable_roles(user: User, roles: QuerySet[AccessRequest]) -> list[int]:
    """Of the roles with a pending request, those this person approves (judged once per role)."""
    pending_roles = set(roles.filter(status=AccessRequest.Status.PENDING).values_list("role_id", flat=True))
    return [
        role.pk
        for role in Role.objects.filter(pk__in=pending_roles)
        if approvers_for(role).filter(pk=user.pk).exists()
    ]


def requests_visible_to(user: User) -> QuerySet[AccessRequest]:
    """Staff see every request; a partner user their own, and their organisation's when they are its admin or
    an approver of the role; nobody sees another organisation's."""
    requests = AccessRequest.objects.select_related("role__partner", "requester", "decided_by")
    actor = actor_of(user)
    member_sees = None
    if actor.in_standing and actor.partner_id is not None and not actor.is_partner_admin:
        member_sees = Q(
            role_id__in=_approvable_roles(user, requests.filter(role__partner_id=actor.partner_id))
        )
    return scoped(requests, user, partner="role__partner_id", owner="requester_id", member_sees=member_sees)


def pending_for_approver(user: User) -> list[AccessRequest]:
    """Pending requests this person may approve (never their own): of their organisation's (every one for
    staff), those of the roles they approve. `approvers_for` decides, judged once per role; it is the very
    judgement that makes a member see another's request (`requests_visible_to`), so it is not made twice."""
    pending = scoped(
        AccessRequest.objects.select_related("role__partner", "requester", "decided_by"),
        user,
        partner="role__partner_id",
        owner="requester_id",
        member_sees=Q(status=AccessRequest.Status.PENDING),
    )
    pending = (
        pending.filter(status=AccessRequest.Status.PENDING).exclude(requester=user).order_by("created_at")
    )
    approves: dict[int, bool] = {}
    found = []
    for request in pending:
        if request.role_id not in approves:
            approves[request.role_id] = approvers_for(request.role).filter(pk=user.pk).exists()
        if approves[request.role_id]:
            found.append(request)
    return found


def request_for_user(user: User, request_id: int) -> AccessRequest:
    return found_or_404(requests_visible_to(user).filter(pk=request_id).first(), "request")


def review_for_staff(user: User, review_id: int) -> BreakGlassReview:
    reviews = BreakGlassReview.objects.select_related("request__role__partner", "request__requester")
    return found_or_404(reviews.filter(pk=review_id).first() if actor_of(user).is_staff else None, "review")


def change_for_staff(user: User, change_id: int) -> RoleChange:
    changes = RoleChange.objects.select_related("role__partner", "author", "decided_by")
    return found_or_404(changes.filter(pk=change_id).first() if actor_of(user).is_staff else None, "change")
