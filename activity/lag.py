"""How far behind activity ingestion is: the newest event ingested, the last successful listing of the trail
(whether or not it found files), and the prefixes that stalled (activity/progress.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from activity import progress
from activity.access import activity_visible_to
from activity.models import ActivityEvent
from activity.selectors import newest_first
from portal.access import actor_of
from portal.models import User

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser


@dataclass(frozen=True)
class IngestionLag:
    newest_event: datetime | None
    last_run: datetime | None
    stalled: int  # prefixes (accounts and regions) not being ingested
    now: datetime

    @property
    def empty(self) -> bool:
        return self.newest_event is None

    @property
    def behind_by(self) -> timedelta | None:
        return None if self.newest_event is None else max(self.now - self.newest_event, timedelta(0))

    @property
    def not_running(self) -> bool:
        """No listing of the trail has succeeded for longer than the setting: ingestion is not running (or cannot
        reach the bucket), and what the pages show is that much out of date."""
        warn = timedelta(minutes=settings.ACTIVITY_LAG_WARN_MINUTES)
        return self.last_run is not None and self.now - self.last_run > warn

    @property
    def behind(self) -> bool:
        """Evidence that activity is missing: ingestion stopped, or some account and region stalled. (An old
        newest event alone is not: partners may simply not have worked since.)"""
        return self.not_running or bool(self.stalled)


def ingestion_lag(*, viewer: User | AnonymousUser | None = None, now: datetime | None = None) -> IngestionLag:
    """As `viewer` may know it (None: everything, as staff): the newest event they may see, and the stalled
    prefixes of their partner's account only. One step down an index, and a scan of the few cursors."""
    now = now or timezone.now()
    # An anonymous viewer is ANONYMOUS, who sees nothing.
    actor = actor_of(viewer) if viewer is not None else None
    events = activity_visible_to(viewer) if viewer is not None else ActivityEvent.objects.all()
    newest = events.order_by(*newest_first(events)).values_list("event_time", flat=True).first()
    stalled = sum(
        1
        for status in progress.prefix_statuses(now=now, stalled_only=True)
        if actor is None or actor.is_staff or (status.partner and status.partner.pk == actor.partner_id)
    )
    return IngestionLag(newest_event=newest, last_run=progress.last_listing(), stalled=stalled, now=now)
