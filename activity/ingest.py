"""The ingestion loop: new objects per prefix in key order, fetched and parsed ahead, attributed and bulk-loaded.

Per batch of objects, in one transaction: keep each file and insert its events (idempotent), or quarantine it,
then move the prefix's cursor past the batch (compare-and-set: a concurrent run that got there first rolls this
one back and stops it). So a crash loses nothing and repeats nothing but the batch in flight, and a bad file never
stops the files behind it.

Downloading and decompressing run in a few threads ahead of the loop (I/O and zlib release the GIL); parsing
and the database work stay on this thread, and overlap (see `loading`).
"""

from __future__ import annotations

import gc
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import NamedTuple

from django.db import DataError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from activity import partitions, store, trail
from activity.attribution import Attributor
from activity.loading import LogData, load_files
from activity.models import QuarantinedObject, TrailCursor
from activity.quarantine import quarantine, record_refusals
from activity.records import MalformedLog, gunzip
from activity.trail import TrailObject, TrailSource
from portal import aws

log = logging.getLogger(__name__)
PREFETCH = 4
# Files per transaction (at most): a commit, and the cursor's update, per batch rather than per file.
BATCH_FILES = 50
BATCH_BYTES = 64 * 1024 * 1024  # decompressed
NOT_A_LOG_FILE = (
    "not a CloudTrail log file: its name does not follow <account>/CloudTrail/<region>/YYYY/MM/DD/"
    "<account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<id>.json.gz (not read; retry to ingest it anyway)"
)


@dataclass
class IngestReport:
    prefixes: int = 0
    objects: int = 0
    events_read: int = 0
    events_inserted: int = 0
    quarantined: int = 0
    not_log_files: int = 0
    records_refused: int = 0  # in files otherwise loaded (each such file is also counted as quarantined)
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
    """One prefix's cursor, advanced batch by batch, by evidence: only past objects handled (their events
    ingested, or quarantined, or recorded as not log files); and only a log file's key ever becomes `last_key`,
    so that the next listing resumes in CloudTrail's naming whatever else the prefix holds."""

    def __init__(self, cursor: TrailCursor, lookback: timedelta) -> None:
        self.lookback = lookback
        self.cursor = cursor

    def pending(self, source: TrailSource) -> Iterator[TrailObject]:
        cursor = self.cursor
        start = trail.resume_after(cursor.prefix, cursor.last_key, self.lookback) if cursor.last_key else ""
        # Files ingested in the lookback window, and the objects quarantined that are not named as log files
        # (listed again at every run when they sort after the log files, and passed over), whatever a retry found.
        done = set(cursor.recent_keys)
        quarantined = QuarantinedObject.objects.filter(bucket=source.bucket, key__startswith=cursor.prefix)
        done.update(key for key in quarantined.values_list("key", flat=True) if not trail.is_log_file(key))
        return (obj for obj in source.objects_after(cursor.prefix, start) if obj.key not in done)

    def listed(self, *, pending: bool) -> None:
        """The listing succeeded: when, and since when objects have been waiting (cleared by `drained`)."""
        now = timezone.now()
        since = (self.cursor.backlog_since or now) if pending else None
        TrailCursor.objects.filter(pk=self.cursor.pk).update(listed_at=now, backlog_since=since)
        self.cursor.listed_at, self.cursor.backlog_since = now, since

    def drained(self) -> None:
        TrailCursor.objects.filter(pk=self.cursor.pk).update(backlog_since=None)
        self.cursor.backlog_since = None

    def claim(self, keys: list[str], inserted: int) -> bool:
        """Move the cursor past `keys` (all handled, inside the transaction storing their events); False if another
        run moved it first, in which case the caller rolls back."""
        cursor = self.cursor
        logs = [key for key in keys if trail.is_log_file(key)]
        last_key = max([cursor.last_key, *logs])
        recent = trail.recent_keys([*cursor.recent_keys, *logs], last_key, self.lookback)
        newest_log_at = trail.log_time(last_key)
        moved = TrailCursor.objects.filter(pk=cursor.pk, version=cursor.version).update(
            last_key=last_key,
            recent_keys=recent,
            newest_log_at=newest_log_at,
            version=F("version") + 1,
            objects_ingested=F("objects_ingested") + len(logs),
            not_log_files=F("not_log_files") + len(keys) - len(logs),
            events_inserted=F("events_inserted") + inserted,
            updated_at=timezone.now(),
        )
        if moved:
            cursor.last_key, cursor.recent_keys, cursor.version = last_key, recent, cursor.version + 1
            cursor.newest_log_at = newest_log_at
        return bool(moved)

    def reload(self) -> None:
        """After a rolled-back claim: the database's cursor, not the one this object had moved."""
        self.cursor.refresh_from_db()


def _cursors(bucket: str, prefixes: list[str]) -> list[TrailCursor]:
    """The prefixes' cursors (created for new prefixes), least recently listed first: a run that stops at its
    budget reaches the prefixes it left out first next time, so no prefix waits behind a busy one for long."""
    TrailCursor.objects.bulk_create(
        [TrailCursor(bucket=bucket, prefix=prefix) for prefix in prefixes], ignore_conflicts=True
    )
    cursors = list(TrailCursor.objects.filter(bucket=bucket, prefix__in=prefixes))
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(cursors, key=lambda c: (c.listed_at or epoch, c.prefix))


def ingest(
    source: TrailSource,
    *,
    accounts: Iterable[str],
    max_objects: int,
    lookback: timedelta,
    prefetch: int = PREFETCH,
    attributor: Attributor | None = None,
) -> IngestReport:
    """Ingest what is new in every prefix of these accounts in `source`, at most `max_objects` objects in this
    run."""
    report = IngestReport()
    attributor = attributor or Attributor()
    cursors = _cursors(source.bucket, source.prefixes(sorted(accounts)))
    with _cyclic_gc_paused():
        _ingest_prefixes(
            source, cursors, report, attributor, max_objects=max_objects, lookback=lookback, prefetch=prefetch
        )
    return report


def ingest_keys(
    source: TrailSource, keys: list[str], *, prefetch: int = PREFETCH, attributor: Attributor | None = None
) -> IngestReport:
    """Ingest the named log files (a notification's), in batches as `ingest` does, moving no cursor: the listing
    finds them later kept already, and skips them unread."""
    report = IngestReport()
    objects = [TrailObject(key, None) for key in keys]
    with _cyclic_gc_paused():
        _ingest_objects(source, None, objects, attributor or Attributor(), report, prefetch)
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
    cursors: list[TrailCursor],
    report: IngestReport,
    attributor: Attributor,
    *,
    max_objects: int,
    lookback: timedelta,
    prefetch: int,
) -> None:
    for cursor in cursors:
        budget = max_objects - report.objects
        if budget <= 0:
            report.more = True
            break
        report.prefixes += 1
        state = _Prefix(cursor, lookback)
        objects = list(islice(state.pending(source), budget + 1))
        more = len(objects) > budget
        state.listed(pending=bool(objects))
        if more:
            report.more, objects = True, objects[:budget]
        if not _ingest_objects(source, state, objects, attributor, report, prefetch):
            report.contended += 1
        elif not more:
            state.drained()


class _Item(NamedTuple):
    obj: TrailObject
    fetched: Fetched | MalformedLog | None  # None: not a log file


class _Contended(Exception):
    """Another ingestion run moved this prefix's cursor first."""


def _ingest_objects(
    source: TrailSource,
    state: _Prefix | None,
    objects: list[TrailObject],
    attributor: Attributor,
    report: IngestReport,
    prefetch: int,
) -> bool:
    """Ingest `objects` of one prefix (`state`: its cursor) in order, a batch of files per transaction; False when a
    concurrent run moved the cursor first."""
    batch: list[_Item] = []
    size = 0
    try:
        for obj, fetched in _prefetched(source, objects, prefetch):
            batch.append(_Item(obj, fetched))
            size += len(fetched.data) if isinstance(fetched, Fetched) else 0
            if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                _commit_batch(source, state, batch, attributor, report)
                batch, size = [], 0
        if batch:
            _commit_batch(source, state, batch, attributor, report)
    except _Contended:
        return False
    return True


def _commit_batch(
    source: TrailSource,
    state: _Prefix | None,
    batch: list[_Item],
    attributor: Attributor,
    report: IngestReport,
) -> None:
    # The months the files may hold, created first (schema work in its own short transaction, not in the batch's).
    partitions.ensure_for_keys(item.obj.key for item in batch)
    _commit(source, state, batch, attributor, report, {})


def _commit(
    source: TrailSource,
    state: _Prefix | None,
    batch: list[_Item],
    attributor: Attributor,
    report: IngestReport,
    refused: dict[str, MalformedLog],
    fresh: bool = True,
) -> None:
    """One transaction: the batch's files kept, their events inserted (see `loading`), the unreadable ones
    quarantined, and the cursor (if any: files named by a notification have none) moved past all of them. If the
    database refuses a record, the batch is rolled back and committed again file by file, so that only the file
    at fault is quarantined (`refused`). If a new file holds an event stored before (`fresh`, see load_files), the
    batch is rolled back and loaded again on the path that keeps only the new events."""
    logs = []
    unreadable: dict[str, MalformedLog] = {}
    sizes = {item.obj.key: item.obj.size for item in batch}
    for item in batch:
        if item.obj.key in refused:
            unreadable[item.obj.key] = refused[item.obj.key]
        elif isinstance(item.fetched, MalformedLog):
            unreadable[item.obj.key] = item.fetched
        elif isinstance(item.fetched, Fetched):
            logs.append(LogData(item.obj.key, item.fetched.content, item.fetched.data))
    try:
        with transaction.atomic():
            store.relax_commit()
            loaded = load_files(bucket=source.bucket, logs=logs, attributor=attributor, fresh=fresh)
            for result in loaded:
                if result.error is not None:
                    unreadable[result.key] = result.error
                elif result.refused:
                    record_refusals(
                        bucket=source.bucket, key=result.key, size=sizes[result.key], refused=result.refused
                    )
            for item in batch:
                if item.obj.key in unreadable:
                    error = unreadable[item.obj.key]
                    quarantine(bucket=source.bucket, key=item.obj.key, size=item.obj.size, error=str(error))
                elif item.fetched is None:
                    quarantine(
                        bucket=source.bucket,
                        key=item.obj.key,
                        size=item.obj.size,
                        error=NOT_A_LOG_FILE,
                        reason=QuarantinedObject.Reason.NOT_A_LOG_FILE,
                    )
            inserted = sum(len(result.inserted) for result in loaded)
            if state is not None and not state.claim([item.obj.key for item in batch], inserted):
                raise _Contended
    except IntegrityError:
        if not fresh:
            raise
        if state is not None:
            state.reload()
        _commit(source, state, batch, attributor, report, refused, fresh=False)
        return
    except (MalformedLog, DataError) as exc:
        if state is not None:
            state.reload()
        if len(batch) > 1:
            for item in batch:
                _commit(source, state, [item], attributor, report, refused, fresh)
            return
        # A record the database refused: the file goes to quarantine instead.
        refused[batch[0].obj.key] = MalformedLog(str(exc).strip()[:2000])
        _commit(source, state, batch, attributor, report, refused, fresh)
        return
    report.objects += len(batch)
    report.not_log_files += sum(item.fetched is None for item in batch)
    report.quarantined += len(unreadable) + sum(bool(result.refused) for result in loaded)
    report.records_refused += sum(len(result.refused) for result in loaded)
    report.events_read += sum(result.events for result in loaded)
    report.events_inserted += inserted
