"""Thin Celery tasks for partner accounts and networks: take ids, call idempotent services."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from partners import aws_account, network
from partners.models import BaselineStep, FederatedSession, Partner
from portal import aws

log = logging.getLogger(__name__)

# Enough polls to outlast a slow CreateAccount (minutes); past them, the resume sweeper takes over.
_MAX_POLLS = 120


@shared_task(
    bind=True, max_retries=_MAX_POLLS, acks_late=True, reject_on_worker_lost=True, ignore_result=True
)
def partner_provision(self, partner_id: int) -> str:
    """Vend (or resume vending) the partner's account, then bring its network to the baseline."""
    partner = Partner.objects.filter(pk=partner_id).first()
    if partner is None or partner.status == Partner.Status.OFFBOARDED:
        return "gone"
    try:
        account = aws_account.partner_account_ensure(partner_id=partner_id)
        if account == BaselineStep.Status.PENDING:
            raise self.retry(countdown=settings.ACCOUNT_POLL_SECONDS)
        if account != BaselineStep.Status.DONE:
            return account
        outcome = network.partner_network_ensure(partner_id=partner_id)
    except aws.AwsUnavailable as exc:
        # The step says so already; back off 2, 4 ... 256 s.
        raise self.retry(countdown=min(256, 2 ** (self.request.retries + 1)), exc=exc) from exc
    return ",".join(f"{name}={status}" for name, status in outcome.items())


@shared_task(acks_late=True, ignore_result=True)
def provisioning_resume() -> int:
    """Re-queue partners whose provisioning went quiet: a pending step nobody touched for a while (a lost message,
    a worker that died mid-poll, retries used up). Partners with a failed step wait for staff."""
    quiet_since = timezone.now() - timedelta(seconds=settings.PROVISION_RESUME_SECONDS)
    stuck = (
        Partner.objects.exclude(status=Partner.Status.OFFBOARDED)
        .filter(
            baseline_steps__status=BaselineStep.Status.PENDING, baseline_steps__updated_at__lt=quiet_since
        )
        .exclude(baseline_steps__status=BaselineStep.Status.FAILED)
        .values_list("pk", flat=True)
        .distinct()
    )
    ids = list(stuck)
    for partner_id in ids:
        partner_provision.delay(partner_id)
    if ids:
        log.info("resumed provisioning of %d partners", len(ids))
    return len(ids)


@shared_task(acks_late=True, ignore_result=True)
def federated_sessions_prune() -> int:
    """Forget the IdP's names for sessions that cannot be alive any more (older than a session's absolute limit)."""
    oldest = timezone.now() - timedelta(seconds=settings.SESSION_ABSOLUTE_SECONDS)
    deleted, _ = FederatedSession.objects.filter(created_at__lt=oldest).delete()
    return deleted
