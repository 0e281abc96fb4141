"""Where ingestion stands in each prefix of the trail (one account and region), from the evidence its cursor keeps:
the last listing that succeeded, the newest log file handled, objects that are not log files, and since when
objects have been waiting. Shown to staff, exposed in /metrics, and alerted on when a prefix stalls.

A prefix stalls when objects in it have waited longer than PORTE_ACTIVITY_LAG_WARN_MINUTES (the runs keep leaving
them behind, or fail on them), or when it has not been listed for that long while ingestion runs. A region where
nothing happens is quiet, not stalled: CloudTrail writes no file when there is no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from activity import scope, trail
from activity.alerts.rules import Draft
from activity.alerts.services import alerts_record
from activity.models import Alert, TrailCursor
from partners.models import Partner


@dataclass(frozen=True)
class PrefixStatus:
    cursor: TrailCursor
    account: str
    region: str
    partner: Partner | None
    in_scope: bool
    now: datetime

    @property
    def lag(self) -> timedelta | None:
        """How old the newest log file handled is (by its delivery time)."""
        newest = self.cursor.newest_log_at
        return None if newest is None else max(self.now - newest, timedelta(0))

    @property
    def stalled_since(self) -> datetime | None:
        if not self.in_scope:
            return None
        warn = timedelta(minutes=settings.ACTIVITY_LAG_WARN_MINUTES)
        waiting = self.cursor.backlog_since
        if waiting is not None and self.now - waiting > warn:
            return waiting
        listed = self.cursor.listed_at
        if listed is not None and self.now - listed > warn:
            return listed
        return None

    @property
    def stalled(self) -> str:
        """Why the prefix is stalled, or "" when it is not."""
        since = self.stalled_since
        if since is None:
            return ""
        if self.cursor.backlog_since == since:
            return f"objects have waited since {since:%Y-%m-%d %H:%M} UTC"
        return f"not listed since {since:%Y-%m-%d %H:%M} UTC"


def prefix_statuses(*, now: datetime | None = None, stalled_only: bool = False) -> list[PrefixStatus]:
    """Every cursor's status (in-scope accounts first, then by account and region); with `stalled_only`, of the
    stalled ones alone, picked out in SQL (the banner asks on every activity page: no status built per cursor)."""
    now = now or timezone.now()
    cursors = TrailCursor.objects.filter(bucket=settings.ACTIVITY_TRAIL_BUCKET)
    if stalled_only:
        # As `stalled_since` decides, in SQL: waiting, or not listed, for longer than the warning.
        since = now - timedelta(minutes=settings.ACTIVITY_LAG_WARN_MINUTES)
        cursors = cursors.filter(Q(backlog_since__lt=since) | Q(listed_at__lt=since))
        if not cursors.exists():
            return []
    in_scope = scope.accounts_in_scope(now=now)
    partners = {p.aws_account_id: p for p in Partner.objects.exclude(aws_account_id="")}
    statuses = []
    for cursor in cursors:
        account, region = trail.prefix_of(cursor.prefix)
        statuses.append(
            PrefixStatus(cursor, account, region, partners.get(account), account in in_scope, now)
        )
    ordered = sorted(statuses, key=lambda s: (not s.in_scope, s.account, s.region))
    return [s for s in ordered if s.stalled_since] if stalled_only else ordered


def last_listing() -> datetime | None:
    """The last time any prefix was listed successfully (whether or not it held new files)."""
    return (
        TrailCursor.objects.filter(listed_at__isnull=False)
        .order_by("-listed_at")
        .values_list("listed_at", flat=True)
        .first()
    )


def stall_alerts(*, now: datetime | None = None) -> list[Alert]:
    """Raise an alert per stalled prefix (one per stall: a later run that finds it still stalled adds nothing)."""
    drafts = []
    for status in prefix_statuses(now=now, stalled_only=True):
        since = status.stalled_since
        assert since is not None
        drafts.append(
            Draft(
                rule=Alert.Rule.INGESTION_STALLED,
                severity=Alert.Severity.MEDIUM,
                dedupe_key=f"ingestion_stalled:{status.cursor.pk}:{since:%Y%m%dT%H%M%S}",
                summary=(
                    f"Activity of account {status.account} in {status.region} is not being ingested: "
                    f"{status.stalled}"
                )[:500],
                event_ids=[],
                event_count=0,
                first_event_at=since,
                last_event_at=status.now,
                partner_id=status.partner.pk if status.partner else None,
                detail={"prefix": status.cursor.prefix, "last_key": status.cursor.last_key},
            )
        )
    return alerts_record(drafts=drafts) if drafts else []
