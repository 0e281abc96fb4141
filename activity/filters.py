"""The filters of the activity views (pages, exports and the API share them) and the tamper-proof page cursor.

Filters narrow a queryset that `access.activity_visible_to` already scoped: a person or grant of another
partner therefore matches nothing, exactly like one that does not exist, and nothing about it leaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django import forms
from django.core import signing
from django.db.models import QuerySet
from django.http import QueryDict

from activity.models import ActivityAction, ActivityEvent, hour_of
from activity.selectors import Keyset, grant_events
from portal.models import User

_CURSOR_SALT = "porte.activity.cursor"
# A filter naming more actions than this (all reads, say) is passed to the database as a subquery.
MAX_ACTIONS = 1000


class BadCursor(ValueError):
    pass


def cursor_encode(keyset: Keyset) -> str:
    """The position after a page, signed: a cursor cannot be forged or edited into another position."""
    micros = int(keyset.event_time.timestamp() * 1_000_000)
    return signing.Signer(salt=_CURSOR_SALT).sign(f"{micros}.{keyset.event_id.hex}")


def cursor_decode(value: str) -> Keyset:
    try:
        micros, event_id = signing.Signer(salt=_CURSOR_SALT).unsign(value).split(".")
        return Keyset(datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), UUID(hex=event_id))
    except (signing.BadSignature, ValueError, OverflowError) as exc:
        raise BadCursor(
            "This page link is not valid (it was changed or is from another Porte). Start again from the "
            "first page."
        ) from exc


class ActivityFilterForm(forms.Form):
    since = forms.DateTimeField(required=False, label="From (UTC)")
    until = forms.DateTimeField(required=False, label="Until (UTC)")
    person = forms.UUIDField(required=False, help_text="A person's Porte id (click a name in the list).")
    grant = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1, label="Grant #")
    service = forms.CharField(required=False, max_length=128, help_text="e.g. ec2 or s3.amazonaws.com")
    event = forms.CharField(required=False, max_length=128, label="Event name", help_text="e.g. PutObject")
    errors_only = forms.BooleanField(required=False, label="Errors only")
    # Staff: calls by principals Porte did not mint, in partner accounts (others never see those).
    flagged_only = forms.BooleanField(required=False, label="Not Porte sessions only")
    access = forms.ChoiceField(
        required=False,
        choices=[("", "Reads and writes"), ("read", "Read-only calls"), ("write", "Writes")],
        label="Kind",
    )
    cursor = forms.CharField(required=False, max_length=256, widget=forms.HiddenInput)

    def clean_service(self) -> str:
        service = self.cleaned_data["service"].strip().lower()
        # People say "ec2"; CloudTrail says "ec2.amazonaws.com".
        return f"{service}.amazonaws.com" if service and "." not in service else service

    def clean_event(self) -> str:
        return str(self.cleaned_data["event"]).strip()

    def clean_cursor(self) -> Keyset | None:
        value = self.cleaned_data["cursor"]
        if not value:
            return None
        try:
            return cursor_decode(value)
        except BadCursor as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end of the time range is before its start.")
        return data

    def activity_filter(self) -> ActivityFilter:
        assert self.is_valid()
        data = self.cleaned_data
        return ActivityFilter(
            since=data["since"],
            until=data["until"],
            person=data["person"],
            grant=data["grant"],
            service=data["service"],
            event=data["event"],
            errors=data["errors_only"],
            flagged=data["flagged_only"],
            access=data["access"],
        )


@dataclass(frozen=True)
class ActivityFilter:
    since: datetime | None = None
    until: datetime | None = None
    person: UUID | None = None
    grant: int | None = None
    service: str = ""
    event: str = ""
    errors: bool = False
    flagged: bool = False
    access: str = ""

    def apply(self, events: QuerySet[ActivityEvent]) -> QuerySet[ActivityEvent]:
        """Narrow `events`, which must already be scoped to what the viewer may see."""
        # By the hour too: the bounds of the indexes' range (see activity/selectors.py).
        if self.since:
            events = events.filter(hour__gte=hour_of(self.since), event_time__gte=self.since)
        if self.until:
            events = events.filter(hour__lte=hour_of(self.until), event_time__lte=self.until)
        if self.person:
            user_id = User.objects.filter(public_id=self.person).values_list("pk", flat=True).first()
            if user_id is None:
                return events.none()
            events = events.filter(user_id=user_id)
        if self.grant:
            events = grant_events(events, self.grant)
        actions = ActivityAction.objects.all()
        if self.service:
            actions = actions.filter(event_source=self.service)
        if self.event:
            actions = actions.filter(event_name=self.event)
        if self.access == "read":
            actions = actions.filter(read_only=True)
        elif self.access == "write":
            actions = actions.filter(read_only=False)
        if self.service or self.event or self.access in ("read", "write"):
            # The actions are few: their ids, then the events by the action index (one range per action).
            action_ids = list(actions.values_list("pk", flat=True)[: MAX_ACTIONS + 1])
            if not action_ids:
                return events.none()
            if len(action_ids) <= MAX_ACTIONS:
                events = events.filter(action_id__in=action_ids)
            else:
                events = events.filter(action_id__in=actions.values("pk"))
        if self.errors:
            events = events.exclude(error_code="")
        if self.flagged:
            events = events.filter(flagged=True)
        return events


def query_without_cursor(params: QueryDict) -> str:
    """The query string of the current filter (for the export links and the next page)."""
    query = params.copy()
    query.pop("cursor", None)
    return query.urlencode()


def form_errors(form: forms.Form) -> dict[str, list[str]]:
    return {field: [str(e) for e in errors] for field, errors in form.errors.items()}
