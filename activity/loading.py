"""A batch of log files into the database, inside the caller's transaction, with this process and the database
server working at the same time.

Each file goes through: read (JSON parsed, each record's facts), attributed (rows), formatted for COPY, and
selected for the alert rules; then its parsed records are let go (freeing a file's hundreds of thousands of small
objects is itself a good part of the work). None of that needs the database, except attribution's lookups of
keys this run has not seen yet, so it is done for the next file while the server inserts the current one's rows:
the whole COPY data goes to the socket first (the kernel buffers it) and the server works through it meanwhile.
A file that needs a lookup finishes its preparation once the server is done.

A record that cannot be stored (not one, or holding a string that is not text) is refused alone: the file's other
records are loaded, and the refusals are reported (`Loaded.refused`) for the caller to record
(`quarantine.record_refusals`).

Per batch rather than per file: which files are stored already (one query), the new files' ids (reserved from
the sequence up front: the rows name their file before it is inserted), the files kept (one statement), and the
alert rules (once, on every new event of the batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from activity import store, trail
from activity.alerts.rules import Batch
from activity.alerts.services import alerts_for_batch
from activity.attribution import COLUMNS, Attributor, Facts, read_facts
from activity.records import MalformedLog, Refusal, TrailRecord, read_document
from activity.store import Row

_TIME = COLUMNS.index("event_time")


class LogData(NamedTuple):
    key: str
    content: bytes  # as stored in the bucket (gzipped): kept as the events' record
    data: bytes  # decompressed


class Loaded(NamedTuple):
    key: str
    events: int  # the file's events: its records, but those refused
    inserted: list[Row]  # the rows new to the database (attribution.COLUMNS), in the file's order
    error: MalformedLog | None  # the file could not be read: nothing of it was loaded
    # Records not loaded, the others were (see `quarantine.record_refusals`); by position, in the file's order.
    refused: Sequence[Refusal] = ()


class _File:
    """One file on its way: prepared (see the module's docstring) step by step, then loaded."""

    def __init__(self, log: LogData, file_id: int | None) -> None:
        self.log = log
        self.file_id = file_id  # reserved before loading, except on SQLite
        self.error: MalformedLog | None = None
        self.refused: list[Refusal] = []
        self.records: list[TrailRecord | None] | None = None
        self.facts: list[Facts] | None = None
        # By the position of their record in the file (see `_in_place`).
        self.rows: list[Row] | None = None
        self.events = 0
        self.newest: datetime | None = None
        self.copy: store.CopyData | None = None
        self.candidates = Batch()

    def prepare(self, attributor: Attributor, *, lookups: bool) -> None:
        """Take the file as far as it goes; with `lookups`, to the end (the database may be queried)."""
        if self.rows is not None or self.error is not None:
            return
        if self.facts is None:
            try:
                document = read_document(self.log.data)
            except MalformedLog as exc:
                self.error = exc
                return
            self.records = document.records
            self.facts, self.refused = read_facts(document, path_account=trail.path_account(self.log.key))
        rows = attributor.attribute(self.facts) if lookups else attributor.attribute_known(self.facts)
        if rows is None:
            return  # a key to look up: finished once the database is free
        records = self.records
        assert records is not None
        self.events = len(rows)
        self.newest = max(row[_TIME] for row in rows) if rows else None
        if self.refused and rows:
            # The rules read a row's record (Batch.select): given the records of the rows, in the same order.
            refused = {refusal.position for refusal in self.refused}
            kept = [record for position, record in enumerate(records) if position not in refused]
            self.candidates = Batch.select(rows, kept)  # type: ignore[arg-type]  # no refused record is kept
            rows = _in_place(rows, refused, len(records))
        else:
            self.candidates = Batch.select(rows, records)  # type: ignore[arg-type]  # none refused
        if rows and self.file_id is not None and store.copies():
            self.copy = store.copy_data(rows, self.file_id)
        self.rows, self.records, self.facts = rows, None, None  # the records are let go here


def _in_place(rows: list[Row], refused: set[int], records: int) -> list[Row]:
    """The rows of a file some of whose records were refused, each at its record's position, and an empty row in
    place of each refused record: the loader stores a row with its index, which must be its record's position in
    the file (the detail page reads the record there), and stores no empty row (see store._first_positions)."""
    kept = iter(rows)
    return [() if position in refused else next(kept) for position in range(records)]


def load_files(
    *, bucket: str, logs: Sequence[LogData], attributor: Attributor, fresh: bool = False
) -> list[Loaded]:
    """Keep each readable file and insert its new events, inside the caller's transaction; then run the alert rules
    on every event new to the database. A file that cannot be read is reported (`Loaded.error`), not raised: the
    caller quarantines it. So are the records refused in a file otherwise loaded (`Loaded.refused`): the caller
    records them (`quarantine.record_refusals`). A record the database refuses raises (DataError) and the caller
    rolls back.
    One result per file, in the order of `logs`.

    `fresh`: the events of files not kept yet are taken to be new (the fast path, see store.copy_insert); one that
    is stored already raises IntegrityError, and the caller rolls back and loads again without `fresh`. CloudTrail
    delivers an event twice only rarely."""
    stored = store.files_stored(bucket, {log.key: log.content for log in logs}) if logs else {}
    # A file kept already had every event stored when it was loaded: nothing to read again.
    loaded = {key: Loaded(key, kept.events, [], None) for key, kept in stored.items()}
    unread = [log for log in logs if log.key not in stored]
    reserved = iter(store.file_ids_reserve(len(unread)) if store.copies() and unread else ())
    files = [_File(log, next(reserved, None)) for log in unread]
    new_files: list[store.NewFile] = []
    batch = Batch()
    for index, file in enumerate(files):
        file.prepare(attributor, lookups=True)
        if file.error is not None or not file.rows:
            loaded[file.log.key] = Loaded(file.log.key, 0, [], file.error, file.refused)
            continue
        rows = file.rows
        following = files[index + 1] if index + 1 < len(files) else None

        def prepare_following(following: _File | None = following) -> None:
            if following is not None:
                following.prepare(attributor, lookups=False)

        created = file.file_id is None
        if created:  # SQLite: no id reserved, the file is kept now
            file.file_id = store.file_create(
                bucket=bucket,
                key=file.log.key,
                content=file.log.content,
                events=file.events,
                newest=file.newest,
            )
        assert file.file_id is not None
        if file.copy is not None:
            positions = store.copy_insert(file.copy, fresh=fresh, while_inserting=prepare_following)
        else:
            positions = store.bulk_insert(rows, file_id=file.file_id)
            prepare_following()
        inserted = [rows[position] for position in positions]
        if inserted and not created:
            new_files.append(
                store.NewFile(file.file_id, file.log.key, file.log.content, file.events, file.newest)
            )
        elif created and not inserted:
            store.file_forget(file.file_id)
        batch.extend(file.candidates if len(inserted) == file.events else file.candidates.only(inserted))
        batch.files.add(file.file_id)
        loaded[file.log.key] = Loaded(file.log.key, file.events, inserted, None, file.refused)
        file.rows = file.copy = None
        file.candidates = Batch()
    store.files_insert(bucket, new_files)
    alerts_for_batch(batch)
    return [loaded[log.key] for log in logs]


def load_log(*, bucket: str, key: str, content: bytes, data: bytes, attributor: Attributor) -> Loaded:
    """One log file (see `load_files`), inside the caller's transaction. Raises MalformedLog if it cannot be read;
    records refused are in `Loaded.refused`."""
    (loaded,) = load_files(bucket=bucket, logs=[LogData(key, content, data)], attributor=attributor)
    if loaded.error is not None:
        raise loaded.error
    return loaded
