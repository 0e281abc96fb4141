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


def grant_for_revoker(user: User, grant_id: int) -> Grant:
    """Staff may revoke any grant, a partner admin their organisation's; 404 for everyone else."""
    grant = grant_for_user(user, grant_id)
    membership = getattr(user, "membership", None)
    if user.is_staff or (membership is not None and membership.is_partner_admin):
        return grant
    raise Http404("No such grant.")
