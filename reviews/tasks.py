"""Scheduled review work: start due campaigns, remind reviewers, apply deadline actions."""

from __future__ import annotations

from celery import shared_task

from reviews import services


@shared_task(acks_late=True, ignore_result=True)
def reviews_tick() -> dict[str, int]:
    return services.reviews_tick()
