"""Thin Celery tasks of portal: notification delivery, health samples, sealing the audit chain."""

from __future__ import annotations

from celery import shared_task

from portal import audit, health, notifications


@shared_task(bind=True, max_retries=8, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def notification_deliver(self, notification_id: int) -> None:
    try:
        notifications.notification_deliver(notification_id=notification_id)
    except notifications.DeliveryFailed as exc:
        # Backoff 4, 8 ... 256 s; the redrive below picks up what is still pending after that.
        raise self.retry(countdown=min(256, 2 ** (self.request.retries + 2)), exc=exc) from exc


@shared_task(ignore_result=True)
def notifications_redrive() -> int:
    return len(notifications.notifications_redrive())


@shared_task(ignore_result=True)
def audit_seal() -> int:
    return audit.seal()


@shared_task(ignore_result=True)
def health_sample() -> bool:
    sample = health.health_sample_record()
    return sample is not None and sample.ok
