"""How far behind activity ingestion is: the newest event ingested and the last run that ingested files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from activity.models import ActivityEvent, TrailCursor


@dataclass(frozen=True)
class IngestionLag:
    newest_event: datetime | None
    last_run: datetime | None
    now: datetime

    @property
    def empty(self) -> bool:
        return self.newest_event is None

    @property
    def behind_by(self) -> timedelta | None:
        return None if self.newest_event is None else max(self.now - self.newest_event, timedelta(0))

    @property
    def behind(self) -> bool:
        """CloudTrail delivers within about 15 minutes: more than the setting means ingestion is not keeping up
        (or the trail stopped delivering), and what the pages show is that much out of date."""
        lag = self.behind_by
        return lag is not None and lag > timedelta(minutes=settings.ACTIVITY_LAG_WARN_MINUTES)


def ingestion_lag(*, now: datetime | None = None) -> IngestionLag:
    # Both are one step down an index (activity_time_idx) or a scan of the few cursors (one per account and region).
    newest = ActivityEvent.objects.order_by("-event_time").values_list("event_time", flat=True).first()
    last_run = TrailCursor.objects.filter(objects_ingested__gt=0).aggregate(at=Max("updated_at"))["at"]
    return IngestionLag(newest_event=newest, last_run=last_run, now=now or timezone.now())
