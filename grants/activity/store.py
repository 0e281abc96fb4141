"""Bulk loading of activity rows, idempotent on eventID.

PostgreSQL: COPY straight into the table; when some eventIDs are already stored (a file read again), COPY into a
temporary staging table and `INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING` instead. SQLite (the
embedded default of `make run`): batched `bulk_create(ignore_conflicts=True)`.
Both run inside the caller's transaction, so a file's rows commit together with its cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from grants.activity.attribution import COLUMNS
from grants.activity.models import ActivityEvent, TrailFile

# The record's own columns, then where the record is: its file and its index in the file's Records.
_COLUMNS = (*COLUMNS, "file_id", "position")
_EVENT_ID = COLUMNS.index("event_id")
assert _COLUMNS[:2] == ("event_id", "event_time") and _COLUMNS[15:22] == (
    "read_only",
    "partner_id",
    "user_id",
    "grant_id",
    "credential_id",
    "is_porte_session",
    "flagged",
), "store._copy_text formats the columns by position"
_SQLITE_BATCH = 500
_COPY_CHUNK = 250
_NULL = "\\N"
_BOOLEAN = {True: "t", False: "f", None: _NULL}
_SEPARATORS = len(_COLUMNS) - 1
_POSITIONS = [str(position) for position in range(4096)]  # a log file has a few thousand records at most


def file_store(
    *, bucket: str, key: str, content: bytes, events: int, newest: datetime | None
) -> tuple[int, bool]:
    """Keep a log file as delivered: (its id, whether it is new). A file read again is stored once: the same
    bytes under the same key are the same file (an object replaced with other bytes is another file)."""
    for file in TrailFile.objects.filter(bucket=bucket, key=key, size=len(content)).only("pk", "content"):
        if bytes(file.content) == content:
            return int(file.pk), False
    values = {
        "bucket": bucket,
        "key": key,
        "content": content,
        "size": len(content),
        "events": events,
        "newest_event_time": newest,
        "ingested_at": timezone.now(),
    }
    if connection.vendor == "postgresql":
        return _pg_file_insert(values), True
    return int(TrailFile.objects.create(**values).pk), True


def _pg_file_insert(values: dict[str, Any]) -> int:
    """INSERT with the parameters bound by the server: the file's bytes go as binary, not quoted into the SQL
    text as Django's client-side binding does (a few per cent of the ingestion's time in a profile)."""
    table = connection.ops.quote_name(TrailFile._meta.db_table)
    # Plain fields: each column is named as its field.
    columns = ", ".join(connection.ops.quote_name(name) for name in values)
    placeholders = ", ".join(["%s"] * len(values))
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING id",  # noqa: S608
            list(values.values()),
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


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


def insert_events(
    rows: Sequence[Row], *, file_id: int, while_inserting: Callable[[], object] | None = None
) -> list[int]:
    """Insert the rows (attribution.COLUMNS, in their file's record order) whose eventID is new; returns their
    positions in `rows`, in order. An eventID repeated within the file keeps its first record. `while_inserting`
    is called once, after the rows are handed over and while the server is still inserting them."""
    positions: Sequence[int] = range(len(rows))
    first = {row[_EVENT_ID]: None for row in rows}
    if len(first) < len(rows):
        seen: dict[str, int] = {}
        for position, row in enumerate(rows):
            seen.setdefault(row[_EVENT_ID], position)
        positions = sorted(seen.values())
    if connection.vendor == "postgresql":
        inserted = _copy_insert(rows, positions, file_id, while_inserting or _nothing)
    else:
        inserted = _bulk_insert(rows, positions, file_id)
        if while_inserting:
            while_inserting()
    return list(inserted)


def _nothing() -> None:
    return None


def _copy_chunks(rows: Sequence[Row], positions: Sequence[int], file_id: int) -> Iterator[str]:
    """Rows in COPY's text format, a few hundred at a time: the server inserts one chunk while the next is being
    formatted. Formatted here directly: several times cheaper than a generic per-value adapter."""
    file_text = str(file_id)
    # A file's events share their times (the same datetime objects, see attribution.read_facts): each formatted
    # once. Keyed by identity, which is stable here because `rows` holds every one of them until the end.
    times: dict[int, str] = {}
    for start in range(0, len(positions), _COPY_CHUNK):
        yield _copy_text(rows, positions[start : start + _COPY_CHUNK], file_text, times)


def _copy_text(
    rows: Sequence[Row], positions: Sequence[int], file_text: str, times: dict[int, str], escape: bool = False
) -> str:
    lines = []
    nulls = 0
    for position in positions:
        row = rows[position]
        at = row[1]
        time = times.get(id(at))
        if time is None:
            time = times[id(at)] = at.isoformat()
        texts = row[2:15]
        if escape:
            texts = tuple(_escape(text) for text in texts)
        partner_id, user_id, grant_id, credential_id = row[16:20]
        nulls += row[15:20].count(None)
        lines.append(
            "\t".join(
                (
                    row[0],
                    time,
                    *texts,
                    _BOOLEAN[row[15]],
                    _NULL if partner_id is None else str(partner_id),
                    _NULL if user_id is None else str(user_id),
                    _NULL if grant_id is None else str(grant_id),
                    _NULL if credential_id is None else str(credential_id),
                    _BOOLEAN[row[20]],
                    _BOOLEAN[row[21]],
                    file_text,
                    _POSITIONS[position] if position < len(_POSITIONS) else str(position),
                )
            )
        )
    lines.append("")
    text = "\n".join(lines)
    # The columns' types are known: only the texts can hold a character COPY needs escaped, and that is rare. One
    # scan of the whole chunk per special character tells: every backslash is a NULL's, every tab and newline a
    # separator. Otherwise the chunk is formatted again with every text escaped.
    if not escape and (
        text.count("\\") != nulls
        or "\r" in text
        or text.count("\t") != _SEPARATORS * len(positions)
        or text.count("\n") != len(positions)
    ):
        return _copy_text(rows, positions, file_text, times, escape=True)
    return text


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_insert(
    rows: Sequence[Row], positions: Sequence[int], file_id: int, while_inserting: Callable[[], object]
) -> Sequence[int]:
    """COPY the rows straight into the table; returns the positions inserted. The rows are handed to a writer
    thread (psycopg's queued writer: the socket is written without holding the GIL), so `while_inserting` runs
    while they are sent and inserted. A file seen before makes the COPY fail on the unique eventID: then the same
    rows go through a temporary staging table and `INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING`, which
    keeps only the new ones."""
    # Identifiers only, from the model's own metadata (quoted): nothing from a log file reaches the SQL text.
    table = connection.ops.quote_name(ActivityEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        try:
            with (
                transaction.atomic(),
                connection.wrap_database_errors,
                cursor.copy(f"COPY {table} ({columns}) FROM STDIN", writer=QueuedLibpqWriter(cursor)) as copy,
            ):
                for chunk in _copy_chunks(rows, positions, file_id):
                    copy.write(chunk)
                while_inserting()
            return positions
        except IntegrityError:
            pass
        cursor.execute(
            f"CREATE TEMP TABLE activity_staging ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608
        )
        with cursor.copy(f"COPY activity_staging ({columns}) FROM STDIN") as copy:
            for chunk in _copy_chunks(rows, positions, file_id):
                copy.write(chunk)
        insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM activity_staging"  # noqa: S608
        cursor.execute(insert + ' ON CONFLICT (event_id) DO NOTHING RETURNING "position"')
        inserted = sorted(position for (position,) in cursor.fetchall())
        cursor.execute("DROP TABLE activity_staging")
    return inserted


def _bulk_insert(rows: Sequence[Row], positions: Sequence[int], file_id: int) -> list[int]:
    new = {rows[position][_EVENT_ID]: position for position in positions}
    ids = list(new)
    for start in range(0, len(ids), _SQLITE_BATCH):
        chunk = ids[start : start + _SQLITE_BATCH]
        for existing in ActivityEvent.objects.filter(event_id__in=chunk).values_list("event_id", flat=True):
            new.pop(str(existing), None)
    events = [
        ActivityEvent(**dict(zip(_COLUMNS, (*rows[position], file_id, position), strict=True)))
        for position in new.values()
    ]
    ActivityEvent.objects.bulk_create(events, batch_size=_SQLITE_BATCH, ignore_conflicts=True)
    return list(new.values())
