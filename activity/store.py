"""Bulk loading of activity rows, idempotent on their key (eventTime, eventID), and of the log files they come from.

PostgreSQL: the rows are copied straight into the table, in COPY's binary format; when some events may be stored
already, they go through a temporary staging table and `INSERT ... SELECT ... ON CONFLICT DO NOTHING` on the key
instead. The files of a batch get their ids from the sequence up front and are inserted together at the end (one
statement).
SQLite (the embedded default of `make run`): batched `bulk_create(ignore_conflicts=True)` (`bulk_insert`), and each
file created as it is loaded.
Everything runs inside the caller's transaction, so a file's rows commit together with its cursor.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

import psycopg
from django.db import connection
from django.utils import timezone
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.copy import Copy, FileWriter
from psycopg.pq import Format

from activity.attribution import COLUMNS
from activity.models import ActivityEvent, TrailFile

# The table's columns, in its order (see ActivityEvent): what a row (attribution.COLUMNS) gives of the event, with
# where its record is (its file and its index in the file's Records) after the time.
_COLUMNS = (
    "event_time",
    "event_id",
    "hour",
    "file_id",
    "position",
    "partner_id",
    "user_id",
    "grant_id",
    "context_id",
    "action_id",
    "flagged",
    "error_code",
)
_HEAD = itemgetter(*(COLUMNS.index(c) for c in _COLUMNS[:3]))
_TAIL = itemgetter(*(COLUMNS.index(c) for c in _COLUMNS[5:]))
_EVENT_ID, _EVENT_TIME = COLUMNS.index("event_id"), COLUMNS.index("event_time")
_SQLITE_BATCH = 500
# COPY's binary format: the server reads each value as it is stored (no text to parse: a tenth of its work per
# row), and psycopg writes the rows in C. The type psycopg sends each column as, by the column's database type.
_BINARY_TYPES = {
    "uuid": "uuid",
    "timestamp with time zone": "timestamptz",
    "varchar": "text",
    "boolean": "bool",
    "bigint": "int8",
    "integer": "int4",
}


class _UuidTextBinaryDumper(Dumper):
    """The eventID as rows carry it (canonical UUID text, see records.event_uuid) to binary uuid, without building
    a uuid.UUID per event."""

    format = Format.BINARY
    oid = postgres.types["uuid"].oid

    def dump(self, obj: str) -> bytes:
        return bytes.fromhex(obj.replace("-", ""))


def copies() -> bool:
    """Whether rows are loaded by COPY (PostgreSQL): then file ids are reserved ahead (`file_ids_reserve`)."""
    return connection.vendor == "postgresql"


class StoredFile(NamedTuple):
    file_id: int
    events: int  # records in the file


def files_stored(bucket: str, contents: dict[str, bytes]) -> dict[str, StoredFile]:
    """Of these files (key -> bytes as delivered), those kept already, by key. A file read again is stored once:
    the same bytes under the same key are the same file (an object replaced with other bytes is another file).
    One query for the batch; the bytes are read only for a key and size that match."""
    sizes = {(key, len(content)) for key, content in contents.items()}
    candidates = [
        pk
        for pk, key, size in TrailFile.objects.filter(bucket=bucket, key__in=list(contents)).values_list(
            "pk", "key", "size"
        )
        if (key, size) in sizes
    ]
    stored: dict[str, StoredFile] = {}
    if candidates:
        found = TrailFile.objects.filter(pk__in=candidates).values_list("pk", "key", "content", "events")
        for pk, key, content, events in found:
            if bytes(content) == contents[key]:
                stored[key] = StoredFile(int(pk), int(events))
    return stored


def file_ids_reserve(count: int) -> list[int]:
    """Ids for files about to be kept (PostgreSQL), taken from the table's sequence: the rows formatted ahead name
    their file before it is inserted. An id not used in the end is a harmless gap."""
    table = TrailFile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
        )
        return [int(pk) for (pk,) in cursor.fetchall()]


class NewFile(NamedTuple):
    file_id: int
    key: str
    content: bytes
    events: int
    newest: datetime | None


def files_insert(bucket: str, files: Sequence[NewFile]) -> None:
    """Keep new files under their reserved ids (PostgreSQL): one statement, with the parameters bound by the
    server, so the files' bytes go as binary rather than quoted into the SQL text as Django's client-side binding
    does."""
    if not files:
        return
    table = connection.ops.quote_name(TrailFile._meta.db_table)
    names = ("id", "bucket", "key", "content", "size", "events", "newest_event_time", "ingested_at")
    # Plain fields: each column is named as its field.
    columns = ", ".join(connection.ops.quote_name(name) for name in names)
    placeholders = ", ".join(["%s"] * len(names))
    now = timezone.now()
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608
            [(f.file_id, bucket, f.key, f.content, len(f.content), f.events, f.newest, now) for f in files],
        )


def file_create(*, bucket: str, key: str, content: bytes, events: int, newest: datetime | None) -> int:
    """Keep a new file now (SQLite, where there is no sequence to reserve ids from): its id."""
    return int(
        TrailFile.objects.create(
            bucket=bucket,
            key=key,
            content=content,
            size=len(content),
            events=events,
            newest_event_time=newest,
            ingested_at=timezone.now(),
        ).pk
    )


def file_forget(file_id: int) -> None:
    """A file none of whose events was new (all came in another file before): nothing refers to it."""
    TrailFile.objects.filter(pk=file_id).delete()


def relax_commit() -> None:
    """For the current transaction: do not wait for the disk at commit. Safe for ingestion only because a lost
    commit loses the events and the cursor's move together, and the files are then simply ingested again."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


Row = tuple[Any, ...]


def _first_positions(rows: Sequence[Row]) -> Sequence[int]:
    """The positions of the rows to insert: all, but for an event repeated within the file (the same key as the
    table's: eventTime and eventID), its first record; and none of the empty rows (records refused, see
    loading._in_place)."""
    try:
        ids = {row[_EVENT_ID] for row in rows}
    except IndexError:  # an empty row: the careful pass below
        ids = set()
    if len(ids) == len(rows):
        # Distinct eventIDs, so distinct keys (the common case: no key built per row).
        return range(len(rows))
    seen: dict[tuple[datetime, str], int] = {}
    for position, row in enumerate(rows):
        if row:
            seen.setdefault((row[_EVENT_TIME], row[_EVENT_ID]), position)
    return sorted(seen.values())


class CopyData(NamedTuple):
    data: bytes  # COPY's binary format, whole (header, rows, trailer)
    positions: Sequence[int]  # the rows' positions in their file


def copy_data(rows: Sequence[Row], file_id: int) -> CopyData:
    """The rows to insert (see `_first_positions`) in COPY's binary format. Formatted by psycopg (in C) into
    memory, with no exchange with the server, so this is done for the next file while the server inserts the
    current one's."""
    positions = _first_positions(rows)
    connection.ensure_connection()
    out = io.BytesIO()
    cursor = psycopg.Cursor(connection.connection)
    # By the column's type only (no Python type): for this cursor, eventIDs as text go out as uuid.
    cursor.adapters.register_dumper(None, _UuidTextBinaryDumper)
    with Copy(cursor, binary=True, writer=FileWriter(out)) as copy:
        copy.set_types(_binary_types())
        write, head, tail = copy.write_row, _HEAD, _TAIL
        for position in positions:
            row = rows[position]
            write((*head(row), file_id, position, *tail(row)))
    return CopyData(out.getvalue(), positions)


def copy_insert(
    data: CopyData, *, fresh: bool, while_inserting: Callable[[], object] | None = None
) -> Sequence[int]:
    """Insert the rows; returns the positions inserted. `while_inserting` is called once, while the server works.

    `fresh`: the rows are taken to be new, and are copied straight into the table. The whole data is written to the
    socket first, where the kernel buffers it, then `while_inserting` runs while the server works through it.
    (Left in the client's buffers, or to a writer thread, the data would wait: such a thread needs the GIL for every
    chunk it sends, and gets it only between the long C calls `while_inserting` makes, such as parsing a whole file.
    Measured: a third fewer events per second.) An event stored before makes the COPY fail on the key, and with it
    the caller's transaction (no savepoint per file: a batch's worth of subtransactions would slow every other
    session's snapshots), which then loads again with `fresh=False`.

    Otherwise the rows go through a temporary staging table and `INSERT ... SELECT ... ON CONFLICT DO NOTHING`,
    which keeps only the new ones."""
    # Identifiers only, from the model's own metadata (quoted): nothing from a log file reaches the SQL text.
    table = connection.ops.quote_name(ActivityEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        if fresh:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(data.data)
                if while_inserting:
                    while_inserting()
            return data.positions
        cursor.execute(
            f"CREATE TEMP TABLE activity_staging ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608
        )
        with cursor.copy(f"COPY activity_staging ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(data.data)
            if while_inserting:
                while_inserting()
        insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM activity_staging"  # noqa: S608
        cursor.execute(insert + ' ON CONFLICT (event_time, event_id) DO NOTHING RETURNING "position"')
        inserted = sorted(position for (position,) in cursor.fetchall())
        cursor.execute("DROP TABLE activity_staging")
    return inserted


@cache
def _binary_types() -> list[str]:
    types = (ActivityEvent._meta.get_field(column).db_type(connection) or "" for column in _COLUMNS)
    return [_BINARY_TYPES[db_type.split("(")[0]] for db_type in types]


def bulk_insert(rows: Sequence[Row], *, file_id: int) -> list[int]:
    """Without COPY (SQLite): insert the rows (attribution.COLUMNS, by their records' positions in the file) whose
    key (eventTime, eventID) is new, by batched bulk_create; returns their positions in `rows`, in order. An event
    repeated within the file keeps its first record (see `_first_positions`)."""
    new = {(rows[p][_EVENT_TIME], rows[p][_EVENT_ID]): p for p in _first_positions(rows)}
    ids = list({event_id for _, event_id in new})
    for start in range(0, len(ids), _SQLITE_BATCH):
        chunk = ids[start : start + _SQLITE_BATCH]
        stored = ActivityEvent.objects.filter(event_id__in=chunk).values_list("event_time", "event_id")
        for event_time, event_id in stored:
            new.pop((event_time, str(event_id)), None)
    events = [
        ActivityEvent(
            **dict(
                zip(
                    _COLUMNS, (*_HEAD(rows[position]), file_id, position, *_TAIL(rows[position])), strict=True
                )
            )
        )
        for position in new.values()
    ]
    ActivityEvent.objects.bulk_create(events, batch_size=_SQLITE_BATCH, ignore_conflicts=True)
    return list(new.values())
