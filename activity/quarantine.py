"""Objects of the trail that ingestion moved past without (all of) their events, and why: recorded inside the
transaction that moved the cursor, open until staff retry or dismiss them (services.quarantined_object_*)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db.models import F
from django.utils import timezone

from activity.models import QuarantinedObject
from activity.records import Refusal, refusals_text

log = logging.getLogger(__name__)


def quarantine(
    *,
    bucket: str,
    key: str,
    size: int | None,
    error: str,
    reason: str = QuarantinedObject.Reason.UNREADABLE,
    records_refused: int = 0,
) -> QuarantinedObject:
    """Record (or re-record) an object and why; it is open again until staff resolve it."""
    now = timezone.now()
    facts = {"error": error, "size": size, "reason": reason, "records_refused": records_refused}
    obj, created = QuarantinedObject.objects.get_or_create(
        bucket=bucket, key=key, defaults={**facts, "first_seen": now, "last_seen": now}
    )
    if not created:
        QuarantinedObject.objects.filter(pk=obj.pk).update(
            **facts,
            last_seen=now,
            attempts=F("attempts") + 1,
            resolved=False,
            resolved_at=None,
        )
        obj.refresh_from_db()
    log.warning("quarantined s3://%s/%s (%s): %s", bucket, key, reason, error)
    return obj


def record_refusals(
    *, bucket: str, key: str, size: int | None, refused: Sequence[Refusal]
) -> QuarantinedObject:
    """A log file some of whose records were refused (loading.Loaded.refused, not empty), its other events
    stored: quarantined with the reason BAD_RECORDS, how many, and the first few by position."""
    return quarantine(
        bucket=bucket,
        key=key,
        size=size,
        error=refusals_text(refused),
        reason=QuarantinedObject.Reason.BAD_RECORDS,
        records_refused=len(refused),
    )
