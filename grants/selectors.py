from __future__ import annotations

from django.db.models import Q, QuerySet

from grants.models import Grant, Role
from portal.access import actor_of, scoped
from portal.models import User


def roles_requestable_by(user: User) -> QuerySet[Role]:
    """Roles the person is eligible for, in their own partner, while they are in standing."""
    actor = actor_of(user)
    if not actor.in_standing or actor.partner_id is None:
        return Role.objects.none()
    eligible = Q(eligibilities__user_id=actor.user_id)
    if actor.groups:
        eligible |= Q(eligibilities__group__in=actor.groups)
    return Role.objects.filter(eligible, partner_id=actor.partner_id).distinct().select_related("partner")


def grants_visible_to(user: User) -> QuerySet[Grant]:
    """Staff see every grant, a partner admin their organisation's, everyone else their own."""
    return scoped(
        Grant.objects.select_related("role__partner", "user", "request"),
        user,
        partner="role__partner_id",
        owner="user_id",
    )
