"""Reads of activity for the views: keyset pages, newest first.

A page is `ORDER BY hour DESC, event_time DESC, event_id DESC` after the last row shown: constant cost at any depth,
where OFFSET would read and discard every earlier row. The hour comes first because every activity index but the
key ends in it (see ActivityEvent): the filter of each view (partner, person, a grant through its holder, action,
errors, flagged) is one index range scan giving the hours in order, and the database sorts each hour's events as it
reaches them (an incremental sort), stopping once the page is full.

A query narrowed by none of those (staff's view of everything, perhaps over a time range or of one action) is read
through the table's key, (event_time, event_id), in that order: the same order (the hour is the event time's),
with no index of its own to keep up at every insert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db.models import Q, QuerySet
from django.db.models.sql.where import WhereNode

from activity.models import ActivityEvent, hour_of
from grants.models import Grant

PAGE_SIZE = 50
# A grant's events are read through its holder's index (see `grant_events`), from a little before it started to
# well after it ended: its sessions are minted while it is active and live at most 12 hours (STS's limit), and a
# refused call with its credentials after that is still its.
GRANT_EVENTS_BEFORE = timedelta(hours=1)
GRANT_EVENTS_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class Keyset:
    """The position after the last event of a page."""

    event_time: datetime
    event_id: UUID


@dataclass(frozen=True)
class ActivityPage:
    events: list[ActivityEvent]
    next: Keyset | None


def grant_events(events: QuerySet[ActivityEvent], grant_id: int) -> QuerySet[ActivityEvent]:
    """The events of a grant among `events`. Every event attributed to a grant carries its holder too, so they are
    found in the holder's events (their index) over the grant's time: no index of its own per grant."""
    grant = (
        Grant.objects.filter(pk=grant_id)
        .values_list("user_id", "starts_at", "activated_at", "ends_at", "ended_at")
        .first()
    )
    if grant is None:
        return events.none()
    user_id, starts_at, activated_at, ends_at, ended_at = grant
    first = min(starts_at, activated_at or starts_at) - GRANT_EVENTS_BEFORE
    last = max(ends_at, ended_at or ends_at) + GRANT_EVENTS_AFTER
    return events.filter(
        user_id=user_id, hour__gte=hour_of(first), hour__lte=hour_of(last), grant_id=grant_id
    )


def activity_page_query(
    events: QuerySet[ActivityEvent],
    *,
    after: Keyset | None = None,
    size: int = PAGE_SIZE,
    oldest_first: bool = False,
) -> QuerySet[ActivityEvent]:
    """The query of one page (one row more than `size`, to know whether another page follows). Oldest first
    reads the same indexes backwards (a grant's timeline is told in the order things happened)."""
    if after is not None and oldest_first:
        events = events.filter(
            Q(event_time__gt=after.event_time) | Q(event_time=after.event_time, event_id__gt=after.event_id),
            hour__gte=hour_of(after.event_time),
            event_time__gte=after.event_time,
        )
    elif after is not None:
        # `hour <= h` bounds the index range; the OR then drops only the rows of that hour already shown.
        events = events.filter(
            Q(event_time__lt=after.event_time) | Q(event_time=after.event_time, event_id__lt=after.event_id),
            hour__lte=hour_of(after.event_time),
            event_time__lte=after.event_time,
        )
    order = newest_first(events)
    if oldest_first:
        order = tuple(column.removeprefix("-") for column in order)
    return events.order_by(*order)[: size + 1]


# The filters after which an index gives events in hour order (ActivityEvent.Meta.indexes): a partner's, a
# person's, and the partial indexes on errors and on flagged events. An action alone does not (its index goes on
# by partner): staff's events of an action are read newest first through the key and kept if theirs, or, for a
# rare action, through its index and sorted, as the planner judges from each month's statistics of actions.
_HOUR_ORDERED = frozenset({"partner_id", "user_id", "error_code", "flagged"})


def newest_first(events: QuerySet[ActivityEvent]) -> tuple[str, ...]:
    """The order, newest first, in which an index gives `events`: by the hour then the time when a filter names a
    column after which an index is in hour order; by the key (time, id) otherwise."""
    if _columns(events.query.where) & _HOUR_ORDERED:
        return ("-hour", "-event_time", "-event_id")
    return ("-event_time", "-event_id")


def _columns(where: WhereNode) -> set[str]:
    columns = set()
    for child in where.children:
        if isinstance(child, WhereNode):
            columns |= _columns(child)
        elif (target := getattr(getattr(child, "lhs", None), "target", None)) is not None:
            columns.add(target.column)
    return columns


def activity_page(
    events: QuerySet[ActivityEvent],
    *,
    after: Keyset | None = None,
    size: int = PAGE_SIZE,
    oldest_first: bool = False,
) -> ActivityPage:
    """One page of `events` (already filtered to what the viewer may see), newest first unless `oldest_first`."""
    rows = list(activity_page_query(events, after=after, size=size, oldest_first=oldest_first))
    page, more = rows[:size], len(rows) > size
    return ActivityPage(page, Keyset(page[-1].event_time, page[-1].event_id) if more and page else None)
