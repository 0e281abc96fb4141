"""The ingestion loop: new objects per prefix in key order, fetched and parsed ahead, attributed and bulk-loaded.

Per batch of objects, in one transaction: keep each file and insert its events (idempotent), or quarantine it,
then move the prefix's cursor past the batch (compare-and-set: a concurrent run that got there first rolls this
one back and stops it). So a crash loses nothing and repeats nothing but the batch in flight, and a bad file never
stops the files behind it.

Downloading and decompressing run in a few threads ahead of the loop (I/O and zlib release the GIL); the
database work stays on this thread, and overlaps with the parsing of the next files.
"""

from __future__ import annotations

import gc
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

from django.db import DataError, transaction
from django.db.models import F
from django.utils import timezone

from grants.activity import store, trail
from grants.activity.attribution import Attributor, Facts, read_facts
from grants.activity.models import QuarantinedObject, TrailCursor
from grants.activity.records import MalformedLog, gunzip, parse_document
from grants.activity.store import Row
from grants.activity.trail import TrailObject, TrailSource
from grants.alerts.services import alerts_for_file
from portal import aws

log = logging.getLogger(__name__)
PREFETCH = 4
# Files per transaction (at most): a commit, and the cursor's update, per batch rather than per file.
BATCH_FILES = 20
BATCH_BYTES = 32 * 1024 * 1024  # decompressed


@dataclass
class IngestReport:
    prefixes: int = 0
    objects: int = 0
    events_read: int = 0
    events_inserted: int = 0
    quarantined: int = 0
    skipped: int = 0
    # Stopped at the per-run limit (the next run goes on), or behind a concurrent run on some prefix.
    more: bool = False
    contended: int = 0

    def as_dict(self) -> dict[str, int | bool]:
        return asdict(self)


class Fetched(NamedTuple):
    content: bytes  # as stored in the bucket (gzipped)
    data: bytes  # decompressed


def fetch(source: TrailSource, key: str) -> Fetched:
    """Download and decompress one object. Raises MalformedLog."""
    raw: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        for chunk in source.read(key):
            raw.append(chunk)
            yield chunk

    data = gunzip(chunks())
    return Fetched(b"".join(raw), data)


class ReadLog(NamedTuple):
    records: list[dict[str, Any]]  # as parsed (the alert rules read some records' request parameters)
    facts: list[Facts]  # what each record says, in the same order


def read_log(data: bytes, *, key: str) -> ReadLog:
    """A decompressed log file's records and what each says (no database needed). Raises MalformedLog."""
    records = parse_document(data)
    return ReadLog(records, read_facts(records, path_account=trail.path_account(key)))


class LoadedLog(NamedTuple):
    events: int  # records in the file
    inserted: list[Row]  # the rows new to the database (attribution.COLUMNS), in the file's order


def load_log(
    *,
    bucket: str,
    key: str,
    content: bytes,
    log: ReadLog,
    attributor: Attributor,
    while_inserting: Callable[[], object] | None = None,
) -> LoadedLog:
    """Keep a read log file and insert its new events, inside the caller's transaction. `while_inserting` runs
    once the events are handed over, while the database inserts them."""
    rows = attributor.attribute(log.facts)
    if not rows:
        return LoadedLog(0, [])
    newest = max(row[1] for row in rows)  # event_time
    file_id, new = store.file_store(bucket=bucket, key=key, content=content, events=len(rows), newest=newest)
    positions = store.insert_events(rows, file_id=file_id, while_inserting=while_inserting)
    inserted = [rows[position] for position in positions]
    if new and not inserted:
        store.file_forget(file_id)
    alerts_for_file(rows=inserted, records=[log.records[position] for position in positions])
    return LoadedLog(len(rows), inserted)


def _fetch(source: TrailSource, obj: TrailObject) -> Fetched | MalformedLog | None:
    """Download and decompress (in a reader thread). JSON parsing is left to the loop's thread: it holds the GIL,
    and a parser busy in another thread would make the loop wait for the GIL after every write to the database."""
    if not trail.is_log_file(obj.key):
        return None
    try:
        return fetch(source, obj.key)
    except MalformedLog as exc:
        return exc
    except aws.AwsRejected as exc:
        # Gone between listing and reading (a lifecycle rule, or by hand): nothing to wait for. Any other refusal
        # (permissions, KMS) stops the run instead, so a misconfiguration never quarantines the whole trail.
        if exc.code in ("NoSuchKey", "404"):
            return MalformedLog(f"could not be read: {exc}")
        raise


def _prefetched(
    source: TrailSource, objects: Iterable[TrailObject], depth: int
) -> Iterator[tuple[TrailObject, Fetched | MalformedLog | None]]:
    """(object, its bytes) in the objects' order, with up to `depth` objects read ahead."""
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="trail-read") as pool:
        ahead: deque[tuple[TrailObject, Future[Fetched | MalformedLog | None]]] = deque()
        upcoming = iter(objects)
        try:
            for obj in islice(upcoming, depth):
                ahead.append((obj, pool.submit(_fetch, source, obj)))
            while ahead:
                obj, future = ahead.popleft()
                following = next(upcoming, None)
                if following is not None:
                    ahead.append((following, pool.submit(_fetch, source, following)))
                yield obj, future.result()
        finally:
            for _, future in ahead:
                future.cancel()


class _Prefix:
    """One prefix's cursor, advanced batch by batch."""

    def __init__(self, source: TrailSource, prefix: str, lookback: timedelta) -> None:
        self.lookback = lookback
        self.cursor, _ = TrailCursor.objects.get_or_create(bucket=source.bucket, prefix=prefix)

    def pending(self, source: TrailSource) -> Iterator[TrailObject]:
        cursor = self.cursor
        start = trail.resume_after(cursor.prefix, cursor.last_key, self.lookback) if cursor.last_key else ""
        done = set(cursor.recent_keys)
        return (obj for obj in source.objects_after(cursor.prefix, start) if obj.key not in done)

    def claim(self, keys: list[str], inserted: int) -> bool:
        """Move the cursor past `keys` (inside the transaction storing their events); False if another run moved
        it first, in which case the caller rolls back."""
        cursor = self.cursor
        last_key = max(cursor.last_key, *keys)
        recent = trail.recent_keys([*cursor.recent_keys, *keys], last_key, self.lookback)
        moved = TrailCursor.objects.filter(pk=cursor.pk, version=cursor.version).update(
            last_key=last_key,
            recent_keys=recent,
            version=F("version") + 1,
            objects_ingested=F("objects_ingested") + len(keys),
            events_inserted=F("events_inserted") + inserted,
            updated_at=timezone.now(),
        )
        if moved:
            cursor.last_key, cursor.recent_keys, cursor.version = last_key, recent, cursor.version + 1
        return bool(moved)

    def reload(self) -> None:
        """After a rolled-back claim: the database's cursor, not the one this object had moved."""
        self.cursor.refresh_from_db()


def quarantine(*, bucket: str, key: str, size: int | None, error: str) -> QuarantinedObject:
    """Record (or re-record) an unreadable object; it is open again until staff resolve it."""
    now = timezone.now()
    obj, created = QuarantinedObject.objects.get_or_create(
        bucket=bucket, key=key, defaults={"error": error, "size": size, "first_seen": now, "last_seen": now}
    )
    if not created:
        QuarantinedObject.objects.filter(pk=obj.pk).update(
            error=error,
            size=size,
            last_seen=now,
            attempts=F("attempts") + 1,
            resolved=False,
            resolved_at=None,
        )
        obj.refresh_from_db()
    log.warning("quarantined s3://%s/%s: %s", bucket, key, error)
    return obj


def ingest(
    source: TrailSource,
    *,
    max_objects: int,
    lookback: timedelta,
    prefetch: int = PREFETCH,
    attributor: Attributor | None = None,
) -> IngestReport:
    """Ingest what is new in every prefix of `source`, at most `max_objects` objects in this run."""
    report = IngestReport()
    attributor = attributor or Attributor()
    with _cyclic_gc_paused():
        _ingest_prefixes(
            source, report, attributor, max_objects=max_objects, lookback=lookback, prefetch=prefetch
        )
    return report


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Parsed log files are hundreds of thousands of small dicts and strings alive at once. Python's cycle
    collector rescans every live container each time allocations pass its threshold, which here cost about a
    third of the run (measured); JSON has no reference cycles, so reference counting alone frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ingest_prefixes(
    source: TrailSource,
    report: IngestReport,
    attributor: Attributor,
    *,
    max_objects: int,
    lookback: timedelta,
    prefetch: int,
) -> None:
    for prefix in source.prefixes():
        report.prefixes += 1
        budget = max_objects - report.objects
        if budget <= 0:
            report.more = True
            break
        state = _Prefix(source, prefix, lookback)
        objects = list(islice(state.pending(source), budget + 1))
        if len(objects) > budget:
            report.more, objects = True, objects[:budget]
        if not _ingest_objects(source, state, objects, attributor, report, prefetch):
            report.contended += 1


class _Item(NamedTuple):
    obj: TrailObject
    fetched: Fetched | MalformedLog | None  # None: not a log file


class _Contended(Exception):
    """Another ingestion run moved this prefix's cursor first."""


def _ingest_objects(
    source: TrailSource,
    state: _Prefix,
    objects: list[TrailObject],
    attributor: Attributor,
    report: IngestReport,
    prefetch: int,
) -> bool:
    """Ingest `objects` of one prefix in order, a batch of files per transaction; False when a concurrent run
    moved the cursor first."""
    batch: list[_Item] = []
    size = 0
    try:
        for obj, fetched in _prefetched(source, objects, prefetch):
            batch.append(_Item(obj, fetched))
            size += len(fetched.data) if isinstance(fetched, Fetched) else 0
            if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                _commit(source, state, batch, attributor, report, {})
                batch, size = [], 0
        if batch:
            _commit(source, state, batch, attributor, report, {})
    except _Contended:
        return False
    return True


Parsed = ReadLog | MalformedLog | None
_LOADED = ReadLog([], [])  # stands for the records of a file already loaded in this batch


def _commit(
    source: TrailSource,
    state: _Prefix,
    batch: list[_Item],
    attributor: Attributor,
    report: IngestReport,
    parsed: dict[str, Parsed],
) -> None:
    """One transaction: the batch's files kept, their events inserted, the unreadable ones quarantined, and the
    cursor moved past all of them. A file whose records cannot be read is quarantined as it is read; if the
    database refuses a record, the batch is rolled back and committed again file by file, so that only the file
    at fault is quarantined.

    Each file is parsed and its records read (`read_log`: the largest share of this process's work) while the
    database is still inserting the previous one's events (handed to psycopg's writer thread, the server works on
    them on the other core): this process's work and the database's overlap."""

    def parse(index: int) -> Parsed:
        item = batch[index]
        if parsed.get(item.obj.key, _LOADED) is _LOADED:
            try:
                fetched = item.fetched
                parsed[item.obj.key] = (
                    read_log(fetched.data, key=item.obj.key) if isinstance(fetched, Fetched) else fetched
                )
            except MalformedLog as exc:
                parsed[item.obj.key] = exc
        return parsed[item.obj.key]

    read = inserted = 0
    try:
        with transaction.atomic():
            store.relax_commit()
            for index, item in enumerate(batch):
                content = parse(index)
                if isinstance(content, MalformedLog):
                    quarantine(bucket=source.bucket, key=item.obj.key, size=item.obj.size, error=str(content))
                elif isinstance(item.fetched, Fetched) and content is not None:
                    loaded = load_log(
                        bucket=source.bucket,
                        key=item.obj.key,
                        content=item.fetched.content,
                        log=content,
                        attributor=attributor,
                        while_inserting=partial(parse, index + 1) if index + 1 < len(batch) else None,
                    )
                    # `loaded.inserted` are this file's events new to the database, stored in this transaction:
                    # what reacts to new activity takes them from here (if the batch is rolled back, it is
                    # stored again file by file, and this runs again).
                    read, inserted = read + loaded.events, inserted + len(loaded.inserted)
                    # Its records are in the database now: let them go (parsed again only if the batch is retried).
                    parsed[item.obj.key] = _LOADED
            if not state.claim([item.obj.key for item in batch], inserted):
                raise _Contended
    except (MalformedLog, DataError) as exc:
        state.reload()
        if len(batch) > 1:
            for item in batch:
                _commit(source, state, [item], attributor, report, parsed)
            return
        # A record the database refused: the file goes to quarantine instead.
        parsed[batch[0].obj.key] = MalformedLog(str(exc).strip()[:2000])
        _commit(source, state, batch, attributor, report, parsed)
        return
    report.objects += len(batch)
    report.skipped += sum(parsed.get(item.obj.key) is None for item in batch)
    report.quarantined += sum(isinstance(parsed.get(item.obj.key), MalformedLog) for item in batch)
    report.events_read += read
    report.events_inserted += inserted
