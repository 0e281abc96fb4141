from __future__ import annotations

from django.db.models import Q, QuerySet

from grants.models import Grant, Role
from partners.models import Partner
from portal.models import User


def roles_requestable_by(user: User) -> QuerySet[Role]:
    """Roles the user is eligible for, in their own partner, while that partner is active."""
    membership = getattr(user, "membership", None)
    if membership is None or not membership.is_active:
        return Role.objects.none()
    eligible = Q(eligibilities__user=user)
    if membership.groups:
        eligible |= Q(eligibilities__group__in=membership.groups)
    return (
        Role.objects.filter(eligible, partner_id=membership.partner_id, partner__status=Partner.Status.ACTIVE)
        .distinct()
        .select_related("partner")
    )


def grants_visible_to(user: User) -> QuerySet[Grant]:
    """Staff see every grant, a partner admin their organisation's, everyone else their own."""
    grants = Grant.objects.select_related("role__partner", "user", "request")
    if user.is_staff:
        return grants
    membership = getattr(user, "membership", None)
    if membership is None:
        return grants.none()
    if membership.is_partner_admin:
        return grants.filter(role__partner_id=membership.partner_id)
    return grants.filter(user=user)
