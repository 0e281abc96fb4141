"""The time part of an event's address (`/activity/<time>/<eventID>/`): an event is found by its key, time first.

In URLs as UTC to the microsecond, e.g. `20261128T103015.123456Z`.
"""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y%m%dT%H%M%S.%fZ"


class EventTimeConverter:
    regex = r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z"

    def to_python(self, value: str) -> datetime:
        try:
            return datetime.strptime(value, _FORMAT).replace(tzinfo=UTC)
        except ValueError:  # matches the pattern but is no date (month 13): as if the path were unknown
            raise ValueError(value) from None

    def to_url(self, value: datetime) -> str:
        return event_time_text(value)


def event_time_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime(_FORMAT)
