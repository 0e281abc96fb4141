"""The events table partitioned by month of event_time (PostgreSQL only: see activity/partitions.py).

The table is rebuilt as a partitioned table with the same columns, constraints and indexes (by the same names, so
later migrations find them), a default partition, and a partition per month from its oldest event to two months
ahead; the rows are copied over. On SQLite nothing changes.
"""

from datetime import UTC, datetime, timedelta

from django.db import migrations

TABLE = "activity_activityevent"


def _month(at):
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _next(month):
    return (month + timedelta(days=32)).replace(day=1)


def partition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    old = f"{TABLE}_unpartitioned"
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        if cursor.fetchone()[0] == "p":
            return
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisprimary FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(%s)",
            [TABLE],
        )
        indexes = cursor.fetchall()
        cursor.execute(f"ALTER TABLE {quote(TABLE)} RENAME TO {quote(old)}")
        for name, _, _ in indexes:
            cursor.execute(f"ALTER INDEX {quote(name)} RENAME TO {quote(name[:50] + '_unpartitioned')}")
        cursor.execute(
            f"CREATE TABLE {quote(TABLE)} (LIKE {quote(old)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
            "PARTITION BY RANGE (event_time)"
        )
        for name, definition, primary in indexes:
            if primary:
                cursor.execute(
                    f"ALTER TABLE {quote(TABLE)} ADD CONSTRAINT {quote(name)} PRIMARY KEY (event_time, event_id)"
                )
            else:
                # The definition names the table as it is called now: the partitioned one.
                cursor.execute(definition.replace(f" ON public.{old} ", f" ON public.{TABLE} "))
        cursor.execute(f"CREATE TABLE {quote(TABLE + '_default')} PARTITION OF {quote(TABLE)} DEFAULT")
        cursor.execute(f"SELECT min(event_time) FROM {quote(old)}")  # noqa: S608
        oldest = cursor.fetchone()[0]
        now = datetime.now(UTC)
        month = _month(min(oldest, now) if oldest else now)
        last = _next(_next(_month(now)))
        while month <= last:
            cursor.execute(
                f"CREATE TABLE {quote(f'{TABLE}_{month:%Y%m}')} PARTITION OF {quote(TABLE)} "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next(month).isoformat()}')"
            )
            month = _next(month)
        cursor.execute(f"INSERT INTO {quote(TABLE)} SELECT * FROM {quote(old)}")  # noqa: S608
        cursor.execute(f"DROP TABLE {quote(old)}")


class Migration(migrations.Migration):
    dependencies = [
        ("activity", "0003_progress_evidence"),
    ]

    operations = [
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
