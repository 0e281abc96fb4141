"""Activating a grant once its request is approved: confirm the role in IAM, then mark it active (or record why not)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from grants import provisioning
from grants.models import Grant
from grants.services.expiry import grant_end_unused, queue_expiry
from partners.models import Partner
from portal.audit import audit_record


def grant_activate(*, grant_id: int) -> Grant:
    """Make a pending grant usable: confirm its role is in place in AWS, then flip it to active.

    Raises aws.AwsUnavailable (retry) or aws.AwsRejected (permanent); the grant is untouched in both cases.
    """
    grant = Grant.objects.select_related("role__partner").get(pk=grant_id)
    if grant.status != Grant.Status.PENDING:
        return grant
    if grant.ends_at <= timezone.now():
        return grant_end_unused(grant)
    if grant.role.partner.status != Partner.Status.ACTIVE:
        return grant_record_failure(grant_id=grant.pk, reason="The partner is not active.", permanent=True)
    provisioning.role_check(grant.role)
    with transaction.atomic():
        now = timezone.now()
        updated = Grant.objects.filter(pk=grant.pk, status=Grant.Status.PENDING).update(
            status=Grant.Status.ACTIVE, activated_at=now, failure_reason=""
        )
        if updated:
            audit_record(
                action="grant.activated",
                obj=grant,
                partner_id=grant.role.partner_id,
                data={"attempts": grant.attempts + 1},
            )
            queue_expiry(grant)
    grant.refresh_from_db()
    return grant


@transaction.atomic
def grant_record_failure(*, grant_id: int, reason: str, permanent: bool) -> Grant:
    """Remember why activation failed; a permanent failure ends the grant in the visible `failed` state."""
    grant = Grant.objects.select_for_update(of=("self",), no_key=True).select_related("role").get(pk=grant_id)
    if grant.status != Grant.Status.PENDING:
        return grant
    grant.attempts += 1
    grant.failure_reason = reason[:2000]
    fields = ["attempts", "failure_reason"]
    if permanent:
        grant.status = Grant.Status.FAILED
        grant.ended_at = timezone.now()
        fields += ["status", "ended_at"]
    grant.save(update_fields=fields)
    audit_record(
        action="grant.failed" if permanent else "grant.activation_retry",
        obj=grant,
        partner_id=grant.role.partner_id,
        data={"reason": grant.failure_reason, "attempt": grant.attempts},
    )
    return grant
