"""Access windows: days and hours in the partner's time zone, overnight periods, and validation."""

from __future__ import annotations

from datetime import UTC, datetime, time
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from partners.windows import validate_window, window_for


def _partner(**kwargs: object) -> SimpleNamespace:
    defaults: dict[str, object] = {
        "access_timezone": "Europe/Paris",
        "access_days": [0, 1, 2, 3, 4],
        "access_start": time(8, 0),
        "access_end": time(18, 0),
    }
    return SimpleNamespace(**(defaults | kwargs))


def test_no_hours_means_any_time() -> None:
    assert window_for(_partner(access_start=None, access_end=None)) is None


def test_office_hours_in_the_partners_time_zone() -> None:
    window = window_for(_partner())
    assert window is not None
    # Tuesday 2026-06-02, Paris is UTC+2 in summer: 08:00 local = 06:00 UTC.
    assert not window.contains(datetime(2026, 6, 2, 5, 59, tzinfo=UTC))
    assert window.contains(datetime(2026, 6, 2, 6, 0, tzinfo=UTC))
    assert window.closes_after(datetime(2026, 6, 2, 9, 0, tzinfo=UTC)) == datetime(
        2026, 6, 2, 16, 0, tzinfo=UTC
    )
    assert not window.contains(datetime(2026, 6, 2, 16, 0, tzinfo=UTC))
    # Saturday: closed all day.
    assert not window.contains(datetime(2026, 6, 6, 10, 0, tzinfo=UTC))
    assert window.describe() == "Mon, Tue, Wed, Thu, Fri 08:00-18:00 (Europe/Paris)"


def test_overnight_window_belongs_to_the_day_it_opens() -> None:
    window = window_for(
        _partner(access_timezone="UTC", access_days=[4], access_start=time(22), access_end=time(6))
    )
    assert window is not None
    friday_night = datetime(2026, 6, 5, 23, 0, tzinfo=UTC)
    assert window.contains(friday_night)
    assert window.contains(datetime(2026, 6, 6, 5, 0, tzinfo=UTC))  # Saturday morning, still Friday's period
    assert window.closes_after(friday_night) == datetime(2026, 6, 6, 6, 0, tzinfo=UTC)
    assert not window.contains(datetime(2026, 6, 6, 23, 0, tzinfo=UTC))  # Saturday night: not listed
    assert not window.contains(datetime(2026, 6, 5, 5, 0, tzinfo=UTC))  # Friday morning: Thursday's period


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "access_timezone"),
        ({"start": time(8), "end": None}, "access_end"),
        ({"start": time(8), "end": time(8)}, "access_end"),
        ({"days": [7]}, "access_days"),
        ({"days": []}, "access_days"),
    ],
)
def test_invalid_windows_are_refused_by_field(kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"timezone": "UTC", "days": [0], "start": time(8), "end": time(18)} | kwargs
    with pytest.raises(ValidationError) as refused:
        validate_window(**values)  # type: ignore[arg-type]
    assert field in refused.value.message_dict
