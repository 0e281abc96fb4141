"""Grants of partner pipelines (workloads): opened by the token exchange itself, already approved (staff approved
the workload, its role and its claims once), and ended like any grant (expiry sweeper, revocation, deny).

A pipeline's runs overlap: while its grant has at least half its span left, a new run mints from it; a grant with
less left is extended to a full span again, so that no run gets credentials about to die."""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from grants.models import AccessRequest, Grant, Role
from portal.audit import audit_record
from portal.models import User


def workload_grant(*, user: User, role: Role, span: timedelta, workload: str) -> Grant:
    """The workload's open grant on `role`, opened or stretched so that at least half of `span` is left."""
    try:
        return _open_or_stretch(user=user, role=role, span=span, workload=workload)
    except IntegrityError:
        # Another run of the same pipeline opened it at the same moment: use that one.
        return _open_or_stretch(user=user, role=role, span=span, workload=workload)


@transaction.atomic
def _open_or_stretch(*, user: User, role: Role, span: timedelta, workload: str) -> Grant:
    now = timezone.now()
    grant = (
        Grant.objects.select_for_update(of=("self",), no_key=True)
        .filter(user=user, role=role, status=Grant.Status.ACTIVE, ends_at__gt=now)
        .first()
    )
    if grant is not None:
        if grant.ends_at - now < span / 2:
            previous = grant.ends_at
            grant.ends_at = now + span
            grant.save(update_fields=["ends_at"])
            audit_record(
                action="grant.extended",
                obj=grant,
                partner_id=role.partner_id,
                data={"from": previous.isoformat(), "to": grant.ends_at.isoformat(), "workload": workload},
            )
        return grant
    with transaction.atomic():
        request = AccessRequest.objects.create(
            requester=user,
            role=role,
            justification=f"Pipeline {workload}: token exchange",
            requested_duration=span,
            status=AccessRequest.Status.APPROVED,
            decided_at=now,
            context={"workload": workload},
        )
        grant = Grant.objects.create(
            request=request,
            user=user,
            role=role,
            status=Grant.Status.ACTIVE,
            starts_at=now,
            ends_at=now + span,
            activated_at=now,
        )
    audit_record(
        action="grant.activated",
        obj=grant,
        partner_id=role.partner_id,
        data={"workload": workload, "ends_at": grant.ends_at.isoformat()},
    )
    return grant
