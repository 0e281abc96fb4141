"""The events table's month partitions under concurrency (PostgreSQL): processes creating the same month at once
make it once, without an error; creating a month never waits for writers of the events, and when a statement
holds the default partition (which attaching must lock) it gives up after LOCK_TIMEOUT, making nothing, rather
than keep the activity pages queued behind it; the next attempt makes it."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection

from activity import partitions
from activity.models import hour_of
from tests.helpers import require_postgresql, run_together

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _require_postgresql() -> None:
    require_postgresql("tests/activity/test_partitions.py")


def _dsn() -> str:
    settings = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )


def test_processes_creating_the_same_month_make_it_once() -> None:
    month = datetime(2031, 5, 1, tzinfo=UTC)
    outcomes = run_together(*[lambda: partitions.ensure([datetime(2031, 5, 17, tzinfo=UTC)])] * 4)
    assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
    assert sorted(map(len, outcomes)) == [0, 0, 0, 1]
    assert partitions.months().count(month) == 1


def _in_thread(call):  # type: ignore[no-untyped-def]
    """`call()` in another thread, on its own connection (run_together guards against a hang)."""
    (outcome,) = run_together(call, timeout=30)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def test_creating_a_month_never_waits_for_writers_and_gives_up_on_a_busy_reader() -> None:
    table = partitions.default_name().removesuffix("_default")
    now = datetime.now(UTC)
    partitions.ensure([now])
    june, july = datetime(2032, 6, 1, tzinfo=UTC), datetime(2032, 7, 1, tzinfo=UTC)
    with psycopg.connect(_dsn()) as writer:
        # A writer of this month's events, its transaction left open while a month is made: no wait.
        writer.execute(
            f"INSERT INTO {table} (event_time, event_id, hour, file_id, position, context_id, action_id, "
            "flagged, error_code) VALUES (%s, gen_random_uuid(), %s, 1, 0, 1, 1, false, '')",
            [now, hour_of(now)],
        )
        assert _in_thread(lambda: partitions.ensure([june])) == [june]
        writer.rollback()
    with psycopg.connect(_dsn()) as reader:
        # A statement reading every partition, the default one included, still holding it (a transaction left
        # open): attaching must lock the default partition, so it gives up after LOCK_TIMEOUT, making nothing.
        reader.execute(f"SELECT count(*) FROM {table}")
        assert _in_thread(lambda: partitions.ensure([july])) == []
        assert july not in partitions.months()
        reader.rollback()
    # Free again: the next attempt makes it.
    assert partitions.ensure([july]) == [july]
    # With the planner's full statistics of its actions (a rare action is known to be rare).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attstattarget FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'action_id'",
            [partitions.name_of(july)],
        )
        assert cursor.fetchone()[0] == partitions.ACTION_STATISTICS
