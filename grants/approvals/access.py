"""Who may see requests, reviews and changes; missing and forbidden both answer 404."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from grants.approvals.models import BreakGlassReview, RoleChange
from grants.approvals.services import approvers_for
from grants.models import AccessRequest, Role
from partners.models import Membership
from portal.models import User


def requests_visible_to(user: User) -> QuerySet[AccessRequest]:
    """Staff see every request; a partner user their own, and their organisation's when they are its admin or
    an approver of the role; nobody sees another organisation's."""
    requests = AccessRequest.objects.select_related("role__partner", "requester", "decided_by")
    if user.is_staff:
        return requests
    membership = getattr(user, "membership", None)
    if membership is None or not membership.is_active:
        return requests.none()
    own_partner = requests.filter(role__partner_id=membership.partner_id)
    if membership.is_partner_admin:
        return own_partner
    pending_roles = set(
        own_partner.filter(status=AccessRequest.Status.PENDING).values_list("role_id", flat=True)
    )
    approvable_roles = [
        role.pk
        for role in Role.objects.filter(pk__in=pending_roles)
        if approvers_for(role).filter(pk=user.pk).exists()
    ]
    return own_partner.filter(Q(requester=user) | Q(role_id__in=approvable_roles))


def pending_for_approver(user: User) -> list[AccessRequest]:
    """Pending requests this person may approve (never their own)."""
    pending = (
        requests_visible_to(user)
        .filter(status=AccessRequest.Status.PENDING)
        .exclude(requester=user)
        .select_related("role")
        .order_by("created_at")
    )
    # Who approves depends on the role alone: judged once per role, not once per request.
    approves: dict[int, bool] = {}
    found = []
    for request in pending:
        if request.role_id not in approves:
            approves[request.role_id] = approvers_for(request.role).filter(pk=user.pk).exists()
        if approves[request.role_id]:
            found.append(request)
    return found


def request_for_user(user: User, request_id: int) -> AccessRequest:
    request = requests_visible_to(user).filter(pk=request_id).first()
    if request is None:
        raise Http404("No such request.")
    return request


def partner_admin_membership(user: User) -> Membership:
    """The membership of an active partner admin; anyone else gets 404 on partner-admin pages."""
    membership = getattr(user, "membership", None)
    if membership is None or not membership.is_active or not membership.is_partner_admin:
        raise Http404
    return membership


def review_for_staff(user: User, review_id: int) -> BreakGlassReview:
    review = BreakGlassReview.objects.select_related("request__role__partner", "request__requester").filter(
        pk=review_id
    )
    found = review.first() if user.is_staff else None
    if found is None:
        raise Http404("No such review.")
    return found


def change_for_staff(user: User, change_id: int) -> RoleChange:
    found = (
        RoleChange.objects.select_related("role__partner", "author", "decided_by")
        .filter(pk=change_id)
        .first()
        if user.is_staff
        else None
    )
    if found is None:
        raise Http404("No such change.")
    return found
