"""Repairing what drifted: grants stuck before activation are re-driven, roles' IAM is made to match the database."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from grants import provisioning, role_lease
from grants.models import Grant, Role
from portal import aws, queue
from portal.audit import audit_record

log = logging.getLogger(__name__)


def grants_redrive_stuck(*, lease: timedelta = timedelta(seconds=60)) -> list[int]:
    """Pending grants whose activation message was lost: queue them again (activation is idempotent)."""
    stale = timezone.now() - lease
    ids = list(
        Grant.objects.filter(status=Grant.Status.PENDING, request__decided_at__lt=stale).values_list(
            "id", flat=True
        )
    )
    for grant_id in ids:
        queue.send("grants.tasks.grant_activate", grant_id)
    return ids


def roles_reconcile(*, now: datetime | None = None) -> dict[int, list[str]]:
    """Repair IAM drift of every provisioned role of a partner that still has an account; audit what drifted."""
    now = now or timezone.now()
    repaired: dict[int, list[str]] = {}
    role_ids = (
        Role.objects.filter(provisioned_at__isnull=False)
        .exclude(partner__aws_account_id="")
        .values_list("id", flat=True)
    )
    # Roles with grants waiting to end have Porte's own work in flight (their deny is being written, or will be
    # after a backoff): comparing IAM with the database now would report that work as drift.
    busy = set(Grant.objects.waiting_to_end().values_list("role_id", flat=True))
    for role_id in sorted(role_lease.ready_roles(set(role_ids) - busy, now)):
        try:
            with role_lease.role_iam_lease(role_id):
                role = Role.objects.select_related("partner").get(pk=role_id)
                drift = provisioning.role_reconcile(role=role, now=now)
        except role_lease.RoleBusy:
            continue
        except aws.AwsError as exc:
            log.warning("could not reconcile role %s: %s", role_id, exc)
            continue
        significant = [d for d in drift if d != "revocations_pruned"]
        if significant:
            with transaction.atomic():
                audit_record(
                    action="role.drift_repaired",
                    obj=role,
                    partner_id=role.partner_id,
                    data={"drift": significant},
                )
            repaired[role_id] = significant
    return repaired
