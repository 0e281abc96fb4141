"""Scheduled approval work: lapse undecided requests, tell holders their access ends soon."""

from __future__ import annotations

from celery import shared_task

from approvals import services


@shared_task(acks_late=True, ignore_result=True)
def requests_expire_pending() -> int:
    return services.requests_expire_pending()


@shared_task(acks_late=True, ignore_result=True)
def grants_notify_expiring() -> int:
    return services.grants_notify_expiring()
