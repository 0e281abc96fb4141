"""A partner's access window: the weekdays and hours (in the partner's time zone) when its people may hold access.

Requests and mints are refused outside it, credentials never outlive the open period, and activity outside it
is alerted on. A window whose end is before its start runs past midnight (22:00-06:00 is one period that starts
on each listed day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError

DAY_NAMES = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass(frozen=True)
class AccessWindow:
    timezone: ZoneInfo
    days: frozenset[int]
    start: time
    end: time

    def _periods_around(self, at: datetime) -> list[tuple[datetime, datetime]]:
        """The open periods that start on the local day before, of, or after `at` (enough to contain it)."""
        local_day = at.astimezone(self.timezone).date()
        periods = []
        for offset in (-1, 0, 1):
            day = local_day + timedelta(days=offset)
            if day.weekday() in self.days:
                periods.append(self._period(day))
        return periods

    def _period(self, day: date) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, self.start, tzinfo=self.timezone)
        end_day = day + timedelta(days=1) if self.end <= self.start else day
        closes = datetime.combine(end_day, self.end, tzinfo=self.timezone)
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def period_containing(self, at: datetime) -> tuple[datetime, datetime] | None:
        for opens, closes in self._periods_around(at):
            if opens <= at < closes:
                return opens, closes
        return None

    def contains(self, at: datetime) -> bool:
        return self.period_containing(at) is not None

    def closes_after(self, at: datetime) -> datetime | None:
        """When the open period containing `at` ends (None if `at` is outside the window)."""
        period = self.period_containing(at)
        return period[1] if period else None

    def opens_after(self, at: datetime) -> datetime | None:
        """When the next open period starts after `at` (None when no day is open)."""
        local_day = at.astimezone(self.timezone).date()
        for offset in range(0, 9):
            day = local_day + timedelta(days=offset)
            if day.weekday() in self.days:
                opens, _ = self._period(day)
                if opens > at:
                    return opens
        return None

    def describe(self) -> str:
        days = ", ".join(DAY_NAMES[d] for d in sorted(self.days)) or "no day"
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M} ({self.timezone.key})"


def window_for(partner: object) -> AccessWindow | None:
    """The partner's window, or None when it may work at any time."""
    start, end = getattr(partner, "access_start", None), getattr(partner, "access_end", None)
    if start is None or end is None:
        return None
    return AccessWindow(
        timezone=zone(getattr(partner, "access_timezone", "UTC") or "UTC"),
        days=frozenset(int(d) for d in (getattr(partner, "access_days", None) or [])),
        start=start,
        end=end,
    )


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            {"access_timezone": f"Unknown time zone {name!r} (use e.g. Europe/Paris)."}
        ) from None


def validate_window(*, timezone: str, days: list[int], start: time | None, end: time | None) -> None:
    """Errors a person can act on, by field."""
    zone(timezone)
    errors: dict[str, str] = {}
    if (start is None) != (end is None):
        errors["access_end" if end is None else "access_start"] = (
            "Give both the start and the end, or neither."
        )
    if start is not None and start == end:
        errors["access_end"] = "The end must differ from the start."
    if any(not isinstance(d, int) or not 0 <= d <= 6 for d in days):
        errors["access_days"] = "Days are numbers 0 (Monday) to 6 (Sunday)."
    elif start is not None and not days:
        errors["access_days"] = "Choose at least one day, or remove the hours."
    if errors:
        raise ValidationError(errors)
