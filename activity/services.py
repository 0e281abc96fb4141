"""Activity actions: ingest the trail (listing it, or the files notifications name), purge past the retention,
retry or resolve a quarantined object."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DataError, transaction
from django.utils import timezone

from activity import interning, partitions, progress, scope, store, trail
from activity.attribution import Attributor
from activity.ingest import IngestReport, fetch, ingest, ingest_keys
from activity.loading import load_log
from activity.models import ActivityEvent, QuarantinedObject, TrailFile
from activity.notified import notice
from activity.quarantine import quarantine, record_refusals
from activity.records import MalformedLog
from portal import aws

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef, MessageTypeDef

from portal.audit import audit_record
from portal.models import User

log = logging.getLogger(__name__)
PURGE_BATCH = 10_000
NOTIFIED_MAX_MESSAGES = 100  # per run; the next tick takes the rest


def activity_ingest(*, max_objects: int | None = None) -> IngestReport:
    """Ingest new log files of the organisation trail in the partners' accounts (activity/scope.py), every
    region; then alert on any prefix that stalls. Idempotent."""
    org_id = trail.organization_id()
    if org_id is None:
        log.info("no AWS Organization: no organisation trail to ingest")
        return IngestReport()
    source = trail.S3TrailSource(bucket=settings.ACTIVITY_TRAIL_BUCKET, root=trail.logs_root(org_id))
    report = ingest(
        source,
        accounts=scope.accounts_in_scope(),
        max_objects=max_objects or settings.ACTIVITY_INGEST_MAX_OBJECTS,
        lookback=timedelta(seconds=settings.ACTIVITY_LOOKBACK_SECONDS),
    )
    if report.objects:
        log.info("activity ingested: %s", report.as_dict())
    progress.stall_alerts()
    return report


def activity_ingest_notified(*, max_messages: int = NOTIFIED_MAX_MESSAGES) -> IngestReport:
    """The near-real-time path (PORTE_ACTIVITY_SQS_QUEUE_URL): ingest the trail files the queue's notifications name,
    then delete those messages. A message is deleted only once its files are committed or quarantined: if this run
    dies first, the queue delivers it again, and a file kept already is skipped unread."""
    url = settings.ACTIVITY_SQS_QUEUE_URL
    org_id = trail.organization_id() if url else None
    if org_id is None:
        return IngestReport()
    root = trail.logs_root(org_id)
    sqs = aws.management().sqs
    messages: list[MessageTypeDef] = []
    while len(messages) < max_messages:
        received = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(10, max_messages - len(messages)), WaitTimeSeconds=0
        ).get("Messages", [])
        if not received:
            break
        messages += received
    keys: list[str] = []
    ignored = unknown = 0
    accounts = scope.accounts_in_scope()
    for message in messages:
        found = notice(message.get("Body", ""), bucket=settings.ACTIVITY_TRAIL_BUCKET, root=root)
        if found is None:
            unknown += 1
        else:
            # Only the partners' accounts, as the listing (other accounts' files are not Porte's to keep).
            in_scope = [key for key in found.keys if trail.path_account(key) in accounts]
            keys += in_scope
            ignored += found.ignored + len(found.keys) - len(in_scope)
    if ignored or unknown:
        log.info(
            "activity notifications: %d objects not partners' log files, %d messages not notifications",
            ignored,
            unknown,
        )
    source = trail.S3TrailSource(bucket=settings.ACTIVITY_TRAIL_BUCKET, root=root)
    report = ingest_keys(source, sorted(set(keys))) if keys else IngestReport()
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
        ]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    if report.objects:
        log.info("activity ingested from notifications: %s", report.as_dict())
    return report


def activity_purge(*, now: datetime | None = None, batch: int = PURGE_BATCH) -> int:
    """Retention (daily): events older than PORTE_ACTIVITY_RETENTION_DAYS go, then the stored files none of whose
    events is left; and the coming months' partitions are created ahead. On PostgreSQL events go by the month, a
    partition dropped once all of it is past the retention (activity/partitions.py); on SQLite row by row, in
    batches (short transactions, short locks)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.ACTIVITY_RETENTION_DAYS)
    purged = files = 0
    if partitions.enabled():
        partitions.maintain(now)
        purged = partitions.drop_before(cutoff)
        # The events of the month the cutoff falls in are all kept, and so are their files.
        files_before = partitions.month_of(cutoff)
    else:
        files_before = cutoff
        while True:
            with transaction.atomic():
                ids = list(
                    ActivityEvent.objects.filter(event_time__lt=cutoff)
                    .order_by("event_time", "event_id")
                    .values_list("pk", flat=True)[:batch]
                )
                if not ids:
                    break
                purged += ActivityEvent.objects.filter(pk__in=ids).delete()[0]
    # What only the purged events shared (principals, addresses, user agents) goes with them.
    shared = interning.forget_unused() if purged else 0
    while True:
        with transaction.atomic():
            file_ids = list(
                TrailFile.objects.filter(newest_event_time__lt=files_before).values_list("pk", flat=True)[
                    :batch
                ]
            )
            if not file_ids:
                break
            files += TrailFile.objects.filter(pk__in=file_ids).delete()[0]
    if purged or files:
        with transaction.atomic():
            audit_record(
                action="activity.purged",
                obj=None,
                data={
                    "events": purged,
                    "files": files,
                    "shared": shared,
                    "before": files_before.isoformat(),  # nothing older is left
                    "days": settings.ACTIVITY_RETENTION_DAYS,
                },
            )
    return purged


def quarantined_object_retry(*, obj: QuarantinedObject, actor: User | None = None) -> QuarantinedObject:
    """Read a quarantined object again (after it was repaired or re-delivered): its events are ingested and it is
    resolved, or it stays open with the new error (or the records still refused, the others ingested)."""
    source = trail.S3TrailSource(bucket=obj.bucket, root="")
    try:
        fetched = fetch(source, obj.key)
        partitions.ensure_for_keys([obj.key])
        if obj.reason == QuarantinedObject.Reason.BAD_RECORDS and store.files_stored(
            obj.bucket, {obj.key: fetched.content}
        ):
            # The same bytes as when its records were refused: they still are (one more attempt, still open).
            with transaction.atomic():
                quarantine(
                    bucket=obj.bucket,
                    key=obj.key,
                    size=obj.size,
                    error=obj.error,
                    reason=obj.reason,
                    records_refused=obj.records_refused,
                )
            obj.refresh_from_db()
            return obj
        with transaction.atomic():
            loaded = load_log(
                bucket=obj.bucket,
                key=obj.key,
                content=fetched.content,
                data=fetched.data,
                attributor=Attributor(),
            )
            if loaded.refused:
                record_refusals(bucket=obj.bucket, key=obj.key, size=obj.size, refused=loaded.refused)
            else:
                _resolve(obj, actor=actor, how="retried", inserted=len(loaded.inserted))
    except (MalformedLog, DataError) as exc:
        with transaction.atomic():
            quarantine(bucket=obj.bucket, key=obj.key, size=obj.size, error=str(exc).strip()[:2000])
    obj.refresh_from_db()
    return obj


@transaction.atomic
def quarantined_object_resolve(*, obj: QuarantinedObject, actor: User) -> QuarantinedObject:
    """Staff looked at it and accept that its events are not ingested (e.g. a stray upload)."""
    _resolve(obj, actor=actor, how="dismissed", inserted=0)
    obj.refresh_from_db()
    return obj


def _resolve(obj: QuarantinedObject, *, actor: User | None, how: str, inserted: int) -> None:
    QuarantinedObject.objects.filter(pk=obj.pk).update(
        resolved=True, resolved_at=timezone.now(), resolved_by=actor
    )
    audit_record(
        action=f"quarantine.{how}",
        obj=obj,
        actor=actor,
        data={"bucket": obj.bucket, "key": obj.key, "events_inserted": inserted},
    )
