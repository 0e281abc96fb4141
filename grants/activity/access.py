"""Who sees which activity. Every activity query a person can trigger starts here, scoped before any filter:
staff see everything (events in accounts of no partner and the flagged ones included), a partner admin their
organisation's Porte sessions, a partner user their own. Missing and forbidden events both answer 404."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db.models import QuerySet
from django.http import Http404

from grants.activity.models import ActivityEvent
from portal.models import User


def activity_visible_to(user: User) -> QuerySet[ActivityEvent]:
    if user.is_staff:
        return ActivityEvent.objects.all()
    membership = getattr(user, "membership", None)
    if membership is None or not membership.is_active:
        return ActivityEvent.objects.none()
    if membership.is_partner_admin:
        # Flagged events (principals Porte did not mint, in the partner's account) are a matter for Porte staff.
        return ActivityEvent.objects.filter(partner_id=membership.partner_id, flagged=False)
    return ActivityEvent.objects.filter(user_id=user.pk, partner_id=membership.partner_id)


def activity_event_for_user(user: User, at: datetime, event_id: UUID) -> ActivityEvent:
    event = activity_visible_to(user).filter(pk=(at, event_id)).first()
    if event is None:
        raise Http404("No such event.")
    return event
