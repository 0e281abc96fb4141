"""Scheduled activity work: ingest the trail (listing, and near-real-time from notifications), purge old events."""

from __future__ import annotations

import logging

from celery import shared_task

from activity import services
from portal import aws

log = logging.getLogger(__name__)


@shared_task(acks_late=True, ignore_result=True)
def activity_ingest_notified() -> dict[str, int | bool]:
    try:
        return services.activity_ingest_notified().as_dict()
    except aws.AwsRejected as exc:
        # The queue or the bucket cannot be read: the messages stay on the queue for the next tick.
        log.warning("near-real-time activity ingestion skipped: %s", exc)
        return {"skipped": True}


@shared_task(acks_late=True, ignore_result=True)
def activity_ingest() -> dict[str, int | bool]:
    try:
        return services.activity_ingest().as_dict()
    except aws.AwsRejected as exc:
        # A missing or unreadable trail bucket is a configuration problem: say so once per run, then retry
        # at the next tick (nothing is lost: the cursor did not move).
        log.warning("activity ingestion skipped: the trail bucket cannot be read (%s)", exc)
        return {"skipped": True}


@shared_task(acks_late=True, ignore_result=True)
def activity_purge() -> int:
    return services.activity_purge()
