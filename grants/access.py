"""Authorisation: one function per object type; missing and forbidden both answer 404."""

from __future__ import annotations

from grants.models import Grant
from grants.selectors import grants_visible_to
from portal.access import actor_of, found_or_404
from portal.models import User


def grant_for_user(user: User, grant_id: int) -> Grant:
    return found_or_404(grants_visible_to(user).filter(pk=grant_id).first(), "grant")


def can_revoke(user: User, grant: Grant) -> bool:
    """Staff may revoke any grant, a partner admin their organisation's, and a person their own."""
    actor = actor_of(user)
    if not actor.in_standing:
        return False
    return (
        actor.is_staff
        or grant.user_id == actor.user_id
        or (actor.is_partner_admin and actor.partner_id == grant.role.partner_id)
    )


def grant_for_revoker(user: User, grant_id: int) -> Grant:
    grant = grant_for_user(user, grant_id)
    return found_or_404(grant if can_revoke(user, grant) else None, "grant")
