"""Bulk loading of activity rows, idempotent on eventID.

PostgreSQL: COPY straight into the table; when some eventIDs are already stored (a file read again), COPY into a
temporary staging table and `INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING` instead. SQLite (the
embedded default of `make run`): batched `bulk_create(ignore_conflicts=True)`.
Both run inside the caller's transaction, so a file's rows commit together with its cursor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction

from grants.activity.attribution import COLUMNS
from grants.activity.models import ActivityEvent, TrailFile

# The record's own columns, then where the record is: its file and its index in the file's Records.
_COLUMNS = (*COLUMNS, "file_id", "position")
_EVENT_ID = COLUMNS.index("event_id")
assert _COLUMNS[:2] == ("event_id", "event_time") and _COLUMNS[7:11] == (
    "partner_id",
    "user_id",
    "grant_id",
    "credential_id",
), "store._copy_text formats the columns by position"
_SQLITE_BATCH = 500
_COPY_CHUNK = 250
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def file_store(
    *, bucket: str, key: str, content: bytes, events: int, newest: datetime | None
) -> tuple[int, bool]:
    """Keep a log file as delivered: (its id, whether it is new). A file read again is stored once: the same
    bytes under the same key are the same file (an object replaced with other bytes is another file)."""
    for file in TrailFile.objects.filter(bucket=bucket, key=key, size=len(content)).only("pk", "content"):
        if bytes(file.content) == content:
            return int(file.pk), False
    file = TrailFile.objects.create(
        bucket=bucket, key=key, content=content, size=len(content), events=events, newest_event_time=newest
    )
    return int(file.pk), True


def file_forget(file_id: int) -> None:
    """A file none of whose events was new (all came in another file before): nothing refers to it."""
    TrailFile.objects.filter(pk=file_id).delete()


def relax_commit() -> None:
    """For the current transaction: do not wait for the disk at commit. Safe for ingestion only because a lost
    commit loses the events and the cursor's move together, and the files are then simply ingested again."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def insert_events(
    rows: Sequence[tuple[Any, ...]], *, file_id: int, while_inserting: Callable[[], object] | None = None
) -> int:
    """Insert the rows (attribution.COLUMNS, in their file's record order) whose eventID is new; returns how many
    were new. An eventID repeated within the file keeps its first record. `while_inserting` is called once, after
    the rows are sent and while the server is still inserting them."""
    unique: dict[str, tuple[Any, ...]] = {}
    for position, row in enumerate(rows):
        unique.setdefault(str(row[_EVENT_ID]), (*row, file_id, position))
    if connection.vendor == "postgresql":
        return _copy_insert(list(unique.values()), while_inserting or _nothing)
    inserted = _bulk_insert(unique)
    if while_inserting:
        while_inserting()
    return inserted


def _nothing() -> None:
    return None


def _copy_chunks(rows: Sequence[tuple[Any, ...]]) -> Iterator[str]:
    """Rows in COPY's text format, a few hundred at a time: the server inserts one chunk while the next is being
    formatted. Formatted here directly: several times cheaper than a generic per-value adapter."""
    for start in range(0, len(rows), _COPY_CHUNK):
        yield _copy_text(rows[start : start + _COPY_CHUNK])


def _copy_text(rows: Sequence[tuple[Any, ...]]) -> str:
    lines = []
    for row in rows:
        # The columns' types are known (attribution.COLUMNS + file, position): one join per row, and one scan
        # of its text for the characters COPY needs escaped (rare: then field by field).
        texts = row[2:7] + row[11:19]
        if _COPY_SPECIAL.search("".join(texts)):
            texts = tuple(_escape(text) for text in texts)
        lines.append(
            "\t".join(
                (
                    row[0],
                    row[1].isoformat(),
                    *texts[:5],
                    _optional(row[7]),
                    _optional(row[8]),
                    _optional(row[9]),
                    _optional(row[10]),
                    *texts[5:],
                    "\\N" if row[19] is None else ("t" if row[19] else "f"),
                    "t" if row[20] else "f",
                    "t" if row[21] else "f",
                    str(row[22]),
                    str(row[23]),
                )
            )
        )
    lines.append("")
    return "\n".join(lines)


def _optional(value: int | None) -> str:
    return "\\N" if value is None else str(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy_insert(rows: Sequence[tuple[Any, ...]], while_inserting: Callable[[], object]) -> int:
    """COPY the rows straight into the table (the server inserts while they are still being sent). A file seen
    before makes that fail on the unique eventID: then the same rows go through a temporary staging table and
    `INSERT ... SELECT ... ON CONFLICT (event_id) DO NOTHING`, which keeps only the new ones."""
    # Identifiers only, from the model's own metadata (quoted): nothing from a log file reaches the SQL text.
    table = connection.ops.quote_name(ActivityEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _COLUMNS)
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        try:
            with (
                transaction.atomic(),
                connection.wrap_database_errors,
                cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
            ):
                for chunk in _copy_chunks(rows):
                    copy.write(chunk)
                # The data is on its way (in the socket's buffers): the server inserts it while this runs.
                while_inserting()
            return len(rows)
        except IntegrityError:
            pass
        cursor.execute(
            f"CREATE TEMP TABLE activity_staging ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608
        )
        with cursor.copy(f"COPY activity_staging ({columns}) FROM STDIN") as copy:
            for chunk in _copy_chunks(rows):
                copy.write(chunk)
        insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM activity_staging"  # noqa: S608
        cursor.execute(insert + " ON CONFLICT (event_id) DO NOTHING")
        inserted = int(cursor.rowcount)
        cursor.execute("DROP TABLE activity_staging")
    return inserted


def _bulk_insert(new: dict[str, tuple[Any, ...]]) -> int:
    ids = list(new)
    for start in range(0, len(ids), _SQLITE_BATCH):
        chunk = ids[start : start + _SQLITE_BATCH]
        for existing in ActivityEvent.objects.filter(event_id__in=chunk).values_list("event_id", flat=True):
            new.pop(str(existing), None)
    events = [ActivityEvent(**dict(zip(_COLUMNS, row, strict=True))) for row in new.values()]
    ActivityEvent.objects.bulk_create(events, batch_size=_SQLITE_BATCH, ignore_conflicts=True)
    return len(events)
