"""Thin Celery tasks: take ids, call a service; services are idempotent so duplicates are harmless."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from grants import role_lease
from grants.models import Role
from grants.provisioning import role_provision as provision
from grants.services import activation, expiry, reconciliation
from portal import aws

log = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=8, acks_late=True, reject_on_worker_lost=True)
def grant_activate(self, grant_id: int) -> str:
    try:
        return activation.grant_activate(grant_id=grant_id).status
    except aws.AwsUnavailable as exc:
        activation.grant_record_failure(grant_id=grant_id, reason=str(exc), permanent=False)
        # Backoff 2, 4, 8 ... 256 s; past the last retry the reconciler picks the grant up again.
        raise self.retry(countdown=min(256, 2 ** (self.request.retries + 1)), exc=exc) from exc
    except aws.AwsRejected as exc:
        return activation.grant_record_failure(grant_id=grant_id, reason=str(exc), permanent=True).status


# Revocations and expiries go to the `revocations` queue (portal/settings.py), ahead of other work.
@shared_task(bind=True, max_retries=8, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def role_finish_endings(self, role_id: int) -> int:
    try:
        return expiry.role_finish_endings(role_id=role_id)
    except role_lease.RoleBusy as exc:
        raise self.retry(countdown=1, exc=exc) from exc  # another writer is at the role: right after it
    except aws.AwsError as exc:
        # The grants stay waiting (refused by Porte already): retry with backoff; the sweeper also re-drives.
        raise self.retry(countdown=min(60, 2 ** (self.request.retries + 1)), exc=exc) from exc


@shared_task(bind=True, max_retries=8, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def grant_expire(self, grant_id: int) -> int:
    left = expiry.grant_time_left(grant_id=grant_id)
    if left is not None and timedelta(0) < left <= timedelta(seconds=5):
        raise self.retry(countdown=left.total_seconds())  # this worker's clock ran a little ahead
    try:
        return expiry.grant_expire(grant_id=grant_id)
    except role_lease.RoleBusy as exc:
        raise self.retry(countdown=1, exc=exc) from exc
    except aws.AwsError as exc:
        raise self.retry(countdown=min(60, 2 ** (self.request.retries + 1)), exc=exc) from exc


@shared_task(bind=True, max_retries=8, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def role_provision(self, role_id: int) -> None:
    role = Role.objects.select_related("partner").filter(pk=role_id).first()
    if role is None or not role.partner.aws_account_id:
        return
    try:
        provision(role=role)
    except aws.AwsUnavailable as exc:
        raise self.retry(countdown=min(60, 2 ** (self.request.retries + 1)), exc=exc) from exc


@shared_task(acks_late=True, ignore_result=True)
def expiry_sweep() -> int:
    return expiry.grants_expire_due()


@shared_task(acks_late=True, ignore_result=True)
def reconcile() -> int:
    redriven = reconciliation.grants_redrive_stuck(lease=_lease())
    if redriven:
        log.info("re-queued activation of %d pending grants", len(redriven))
    repaired = reconciliation.roles_reconcile()
    if repaired:
        log.warning("repaired IAM drift on %d roles: %s", len(repaired), repaired)
    return len(redriven)


def _lease() -> timedelta:
    return timedelta(seconds=settings.TRANSITION_LEASE_SECONDS)
