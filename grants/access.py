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
