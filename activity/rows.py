"""Events as people read them (pages, API, exports): who (person, organisation) looked up in bulk per page,
never one query per row, and never a join on the event query (which would keep the planner off the index)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.urls import reverse

from activity.converters import event_time_text
from activity.models import ActivityAction, ActivityContext, ActivityEvent
from activity.selectors import activity_page
from partners.models import Partner
from portal.models import User

EXPORT_BATCH = 2000
# The first page is smaller: the first rows go out at once, and a small LIMIT keeps the planner on the index.
EXPORT_FIRST_BATCH = 500


@dataclass(frozen=True)
class EventRow:
    event: ActivityEvent
    person: User | None
    partner: Partner | None

    # Formatted here rather than in the template: a page shows 50 rows, and each template tag or filter costs
    # more than the Python it stands for (measured: bench/activity_views.py).
    @property
    def when(self) -> str:
        return self.event.event_time.strftime("%Y-%m-%d %H:%M:%S")

    @property
    def detail_url(self) -> str:
        return f"{_activity_prefix()}{event_time_text(self.event.event_time)}/{self.event.event_id}/"

    @property
    def grant_url(self) -> str:
        grant_id = self.event.grant_id
        return reverse("grant_detail", args=[grant_id]) if grant_id is not None else ""

    @property
    def who(self) -> str:
        if self.person is not None:
            return self.person.display_name
        return self.event.principal_arn or self.event.identity_type or "—"

    def as_dict(self) -> dict[str, Any]:
        e = self.event
        return {
            "event_id": str(e.event_id),
            "event_time": e.event_time.isoformat(),
            "partner": self.partner.slug if self.partner else None,
            "person": self.person.display_name if self.person else None,
            "person_id": str(self.person.public_id) if self.person else None,
            "grant": e.grant_id,
            "event_source": e.event_source,
            "event_name": e.event_name,
            "aws_region": e.aws_region,
            "account_id": e.account_id,
            "read_only": e.read_only,
            "error_code": e.error_code,
            "error_message": e.error_message,
            "source_ip": e.source_ip,
            "user_agent": e.user_agent,
            "identity_type": e.identity_type,
            "principal_arn": e.principal_arn,
            "access_key_id": e.access_key_id,
            "porte_session": e.is_porte_session,
            "flagged": e.flagged,
        }


FIELDS = [
    "event_id",
    "event_time",
    "partner",
    "person",
    "person_id",
    "grant",
    "event_source",
    "event_name",
    "aws_region",
    "account_id",
    "read_only",
    "error_code",
    "error_message",
    "source_ip",
    "user_agent",
    "identity_type",
    "principal_arn",
    "access_key_id",
    "porte_session",
    "flagged",
]


def _activity_prefix() -> str:
    return reverse("activity_list")


class _Names:
    """People, organisations, actions and contexts already looked up (an export meets the same few again and
    again)."""

    def __init__(self) -> None:
        self.users: dict[int, User] = {}
        self.partners: dict[int, Partner] = {}
        self.actions: dict[int, ActivityAction] = {}
        self.contexts: dict[int, ActivityContext] = {}

    def rows(self, events: Iterable[ActivityEvent]) -> list[EventRow]:
        events = list(events)
        action_ids = {e.action_id for e in events} - self.actions.keys()
        context_ids = {e.context_id for e in events} - self.contexts.keys()
        if action_ids:
            self.actions.update(ActivityAction.objects.in_bulk(action_ids))
        if context_ids:
            self.contexts.update(ActivityContext.objects.in_bulk(context_ids))
        for e in events:
            # Set as if fetched with the event (no query when a page reads them). One stored just as retention
            # forgot its action or context (interning.forget_unused) shows without it.
            e.action = self.actions.get(e.action_id) or ActivityAction(pk=e.action_id)
            e.context = self.contexts.get(e.context_id) or ActivityContext(pk=e.context_id)
        user_ids = {e.user_id for e in events if e.user_id is not None} - self.users.keys()
        partner_ids = {e.partner_id for e in events if e.partner_id is not None} - self.partners.keys()
        if user_ids:
            self.users.update(
                User.objects.only("pk", "public_id", "username", "email", "first_name", "last_name").in_bulk(
                    user_ids
                )
            )
        if partner_ids:
            self.partners.update(Partner.objects.only("pk", "slug", "name").in_bulk(partner_ids))
        return [
            EventRow(
                e,
                self.users.get(e.user_id) if e.user_id is not None else None,
                self.partners.get(e.partner_id) if e.partner_id is not None else None,
            )
            for e in events
        ]


def event_rows(events: Iterable[ActivityEvent]) -> list[EventRow]:
    return _Names().rows(events)


class ExportRows:
    """Every event of a (scoped, filtered) queryset up to `limit`, newest first, read page by page by keyset:
    memory stays at one batch whatever the size. `truncated` says, once iterated, whether the limit cut it."""

    def __init__(self, events: QuerySet[ActivityEvent], *, limit: int) -> None:
        self.events, self.limit = events, limit
        self.truncated = False

    def __iter__(self) -> Iterator[EventRow]:
        names, after, sent = _Names(), None, 0
        while sent < self.limit:
            # A page knows whether another follows: at the limit, that says whether the export was cut short.
            batch = EXPORT_BATCH if sent else EXPORT_FIRST_BATCH
            page = activity_page(self.events, after=after, size=min(batch, self.limit - sent))
            yield from names.rows(page.events)
            sent += len(page.events)
            if page.next is None:
                return
            after = page.next
        self.truncated = True
