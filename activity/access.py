"""Who sees which activity. Every activity query a person can trigger starts here, scoped before any filter:
staff see everything (events in accounts of no partner and the flagged ones included), a partner admin their
organisation's Porte sessions, a partner user their own. Missing and forbidden events both answer 404."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from django.db.models import Q, QuerySet

from activity.models import ActivityEvent
from portal.access import found_or_404, scoped
from portal.models import User

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser


def activity_visible_to(user: User | AnonymousUser) -> QuerySet[ActivityEvent]:
    # Flagged events (principals Porte did not mint, in the partner's account) are a matter for Porte staff.
    return scoped(
        ActivityEvent.objects.all(), user, partner="partner_id", owner="user_id", admin_sees=Q(flagged=False)
    )


def activity_event_for_user(user: User, at: datetime, event_id: UUID) -> ActivityEvent:
    event = activity_visible_to(user).filter(pk=(at, event_id)).select_related("action", "context").first()
    return found_or_404(event, "event")
