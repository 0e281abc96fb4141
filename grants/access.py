"""Authorisation: one function per object type; missing and forbidden both answer 404."""

from __future__ import annotations

from django.http import Http404

from grants.models import Grant
from grants.selectors import grants_visible_to
from portal.models import User


def grant_for_user(user: User, grant_id: int) -> Grant:
    grant = grants_visible_to(user).filter(pk=grant_id).first()
    if grant is None:
        raise Http404("No such grant.")
    return grant


def can_revoke(user: User, grant: Grant) -> bool:
    """Staff may revoke any grant, a partner admin their own organisation's."""
    membership = getattr(user, "membership", None)
    return user.is_staff or (
        membership is not None
        and membership.is_partner_admin
        and membership.partner_id == grant.role.partner_id
    )


def grant_for_revoker(user: User, grant_id: int) -> Grant:
    grant = grant_for_user(user, grant_id)
    if not can_revoke(user, grant):
        raise Http404("No such grant.")
    return grant
