"""Monthly partitions of the events table (PostgreSQL; on SQLite it is one plain table and nothing here applies).

The table is partitioned by range of event_time, one partition per calendar month (UTC), plus a default partition
that keeps any event outside every month created (a time far in the past or future: stored, never refused).
Months are created ahead: the coming months by the daily maintenance (`maintain`), and the months a batch of log
files may hold by ingestion, before it opens its transaction (`ensure_for_keys`). A month is created as a plain
table and then attached, which locks the parent only against other schema changes (SHARE UPDATE EXCLUSIVE),
never against inserts, as `CREATE TABLE ... PARTITION OF` would (ACCESS EXCLUSIVE). Attaching does lock the
default partition (ACCESS EXCLUSIVE, to check it holds nothing of the new month), so it waits for the statements
reading it; and statements arriving meanwhile wait behind it. So it waits at most LOCK_TIMEOUT and otherwise
gives up (the month's events, if any, go to the default partition meanwhile, and move when the month is made):
creating a month costs the activity pages at most that, once a month, and usually nothing (in autocommit a page's
query holds its lock only while it runs).

Retention drops whole months (`drop_before`): a month goes once every event in it is older than the cutoff, so
events are kept at least PORTE_ACTIVITY_RETENTION_DAYS and at most a month longer, and the purge costs one
statement per month instead of a DELETE per row.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import OperationalError, connection, transaction

from activity import trail
from activity.models import ActivityEvent

log = logging.getLogger(__name__)
AHEAD_MONTHS = 2
LOCK_TIMEOUT = "1s"
_LOCK_NOT_AVAILABLE = "55P03"
# A file's events happened before it was delivered (minutes, by CloudTrail's documentation; a day is generous).
DELIVERY_DELAY = timedelta(days=1)
# The statistics the planner keeps of each month's actions: all of them, so that a rare one is known to be rare (with
# the default, the long tail's actions share one guess, and a rare one's page was read by walking every event newest
# first, not from its own few rows: bench/activity_views.py). Migration 0007 sets the same on the table.
ACTION_STATISTICS = 1000


def _table() -> str:
    return ActivityEvent._meta.db_table


def month_of(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    return (month + timedelta(days=32)).replace(day=1)


def name_of(month: datetime) -> str:
    return f"{_table()}_{month:%Y%m}"


def default_name() -> str:
    return f"{_table()}_default"


def enabled() -> bool:
    """Whether the events table is partitioned here (PostgreSQL, after migration 0004)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [_table()])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def months() -> list[datetime]:
    """The months that have a partition, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [_table()],
        )
        names = [name for (name,) in cursor.fetchall()]
    pattern = re.compile(re.escape(_table()) + r"_(\d{4})(\d{2})")
    found = [pattern.fullmatch(name) for name in names]
    return sorted(datetime(int(m[1]), int(m[2]), 1, tzinfo=UTC) for m in found if m)


def ensure(wanted: Iterable[datetime]) -> list[datetime]:
    """Create the partitions of these months that do not exist yet; returns the months created. Each in its own
    short transaction: call it outside any transaction that writes events. Any events of a new month that the
    default partition holds move into it."""
    if not enabled():
        return []
    have = set(months())
    created = []
    for month in sorted({month_of(m) for m in wanted} - have):
        if _create(month):
            created.append(month)
    return created


def _create(month: datetime) -> bool:
    table, name = _table(), name_of(month)
    quote = connection.ops.quote_name
    bounds = f"FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Two processes creating the same month: the second waits here, then finds it made.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
            if cursor.fetchone()[0]:
                return False
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            cursor.execute(
                f"CREATE TABLE {quote(name)} (LIKE {quote(table)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
            cursor.execute(
                f"ALTER TABLE {quote(name)} ALTER COLUMN action_id SET STATISTICS {ACTION_STATISTICS}"
            )
            cursor.execute(
                f"WITH moved AS (DELETE FROM {quote(default_name())} WHERE event_time >= %s "  # noqa: S608
                f"AND event_time < %s RETURNING *) INSERT INTO {quote(name)} SELECT * FROM moved",
                [month, next_month(month)],
            )
            cursor.execute(f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(name)} FOR VALUES {bounds}")
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        # Nothing was made (the transaction rolled back): the next call tries again.
        log.warning("activity partition %s not created: the events table was busy for %s", name, LOCK_TIMEOUT)
        return False
    log.info("activity partition %s created", name)
    return True


def ensure_for_keys(keys: Iterable[str]) -> None:
    """The months a batch of log files may hold events of: each file's delivery month, and the month a day before
    (events happen before their file is delivered). Events outside them are still stored (default partition)."""
    wanted = set()
    for key in keys:
        delivered = trail.log_time(key)
        if delivered is not None:
            wanted.update({month_of(delivered), month_of(delivered - DELIVERY_DELAY)})
    if wanted:
        ensure(wanted)


def drop_before(cutoff: datetime) -> int:
    """Drop the months wholly before `cutoff`, and delete the default partition's events before it; returns the
    events removed. Each month in its own short transaction, which gives up after LOCK_TIMEOUT (until the next
    run) rather than keep the activity pages waiting behind it while a long statement holds the table."""
    if not enabled():
        return 0
    quote = connection.ops.quote_name
    removed = 0
    for month in months():
        if next_month(month) > cutoff:
            break
        name = name_of(month)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                cursor.execute(f"SELECT count(*) FROM {quote(name)}")  # noqa: S608
                events = int(cursor.fetchone()[0])
                cursor.execute(f"ALTER TABLE {quote(_table())} DETACH PARTITION {quote(name)}")
                cursor.execute(f"DROP TABLE {quote(name)}")
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            log.warning("activity partition %s not dropped: the events table was busy (next run)", name)
            break
        removed += events
        log.info("activity partition %s dropped", name)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quote(default_name())} WHERE event_time < %s", [cutoff])  # noqa: S608
        removed += cursor.rowcount
    return removed


def maintain(now: datetime) -> list[datetime]:
    """The coming months created ahead (the daily task): ingestion then never creates one on its path."""
    month = month_of(now)
    wanted = [month]
    for _ in range(AHEAD_MONTHS):
        month = next_month(month)
        wanted.append(month)
    return ensure(wanted)
