"""Ending grants at their end: the sweep and each grant's own expiry task claim them; a role's endings are then
finished under its IAM lease (the deny put, the grants recorded as ended), never holding a lock across AWS."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from grants import policies, provisioning, role_lease
from grants.models import Grant, Role
from portal import aws, queue
from portal.audit import Entry, audit_record, audit_record_many

log = logging.getLogger(__name__)

SWEEP_BATCH = 5000


def grants_expire_due(*, now: datetime | None = None) -> int:
    """End every grant whose time is up. Safe to run concurrently and repeatedly (beat runs it every
    EXPIRY_SWEEP_SECONDS as the safety net; each grant also has its own task at its end, `grant_expire`).

    1. Claim due grants (active → expiring, deny cutoff set) in one short transaction; rows locked by another
       sweeper are skipped, so two sweepers never claim the same grant.
    2. Per role with grants waiting to end (claimed by this sweep or any earlier one, expiring or revoking):
       put the revocation deny computed from the database, then mark those grants ended and audit them
       (`role_finish_endings`). A role whose AWS call fails is backed off and retried by a later sweep; its
       grants stay waiting (refused by Porte, denied by the session policy at their end) and nothing waits
       for a lease to run out.
    Returns the number of grants ended.
    """
    now = now or timezone.now()
    cutoff = policies.ceil_to_second(now)
    with transaction.atomic():
        due = list(
            Grant.objects.due(now)
            .select_for_update(of=("self",), no_key=True, skip_locked=True)
            .order_by("ends_at")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        if due:
            Grant.objects.filter(id__in=due, status=Grant.Status.ACTIVE).update(
                status=Grant.Status.EXPIRING, deny_cutoff=cutoff, claimed_at=now
            )
    for grant in Grant.objects.filter(status=Grant.Status.PENDING, ends_at__lte=now).select_related("role"):
        grant_end_unused(grant)
    waiting = set(Grant.objects.waiting_to_end().values_list("role_id", flat=True))
    ended = 0
    partner_of = dict(Role.objects.filter(pk__in=waiting).values_list("pk", "partner_id"))
    unavailable: set[int] = (
        set()
    )  # partners whose AWS did not answer in this sweep: their other roles wait too
    for role_id in sorted(role_lease.ready_roles(waiting, now)):
        if partner_of.get(role_id) in unavailable:
            continue
        try:
            ended += role_finish_endings(role_id=role_id)
        except role_lease.RoleBusy:
            continue  # its writer covers these grants, or the next sweep does
        except aws.AwsError as exc:
            log.warning("could not put revocation deny on role %s: %s", role_id, exc)
            if isinstance(exc, aws.AwsUnavailable):
                unavailable.add(partner_of[role_id])
    return ended


def grant_expire(*, grant_id: int) -> int:
    """End one grant at its time (its own task, queued for ends_at at activation and extension). Early, or
    extended meanwhile: nothing to do (the later task or the sweeper ends it). Returns grants ended."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Grant.objects.filter(pk=grant_id, status=Grant.Status.ACTIVE, ends_at__lte=now).update(
            status=Grant.Status.EXPIRING, deny_cutoff=policies.ceil_to_second(now), claimed_at=now
        )
    role_id = Grant.objects.filter(pk=grant_id).values_list("role_id", flat=True).first()
    if role_id is None or (not claimed and not _waiting(role_id)):
        return 0
    return role_finish_endings(role_id=role_id)


def grant_time_left(*, grant_id: int) -> timedelta | None:
    """How long an active grant has left (None when it is not active)."""
    ends_at = Grant.objects.filter(pk=grant_id, status=Grant.Status.ACTIVE).values_list("ends_at", flat=True)
    return ends_at[0] - timezone.now() if ends_at else None


def _waiting(role_id: int) -> bool:
    return Grant.objects.waiting_to_end().filter(role_id=role_id).exists()


def queue_expiry(grant: Grant) -> None:
    """On commit, queue the grant's own expiry for its end (the beat sweeper stays the safety net)."""
    queue.on_commit("grants.tasks.grant_expire", grant.pk, eta=grant.ends_at)


def role_finish_endings(*, role_id: int) -> int:
    """Put the role's revocation deny as the database says it is, then mark the grants waiting to end as ended.

    No lock or transaction is held across the AWS call: the role's IAM lease (grants/role_lease.py) keeps a
    second writer out, the grants are read before the document is computed (so each is in it), and they are
    marked ended in a short transaction afterwards. Raises role_lease.RoleBusy when another writer holds the
    lease (try again in a moment), aws.AwsError after backing the role off."""
    with role_lease.role_iam_lease(role_id):
        role = Role.objects.select_related("partner").get(pk=role_id)
        waiting = list(Grant.objects.waiting_to_end().filter(role_id=role_id).values_list("id", flat=True))
        try:
            provisioning.role_put_revocations(role, timezone.now())
        except aws.AwsError as exc:
            role_lease.record_failure(role, whole_partner=isinstance(exc, aws.AwsUnavailable))
            Grant.objects.filter(id__in=waiting).update(failure_reason=f"Revocation pending: {exc}"[:2000])
            raise
        role_lease.record_success(role)
        return _record_endings(role, waiting)


def _record_endings(role: Role, grant_ids: list[int]) -> int:
    """Only after AWS accepted the deny: end the grants, in one statement per final state, and audit them."""
    with transaction.atomic():
        claimed = list(
            Grant.objects.select_for_update(of=("self",), no_key=True)
            .waiting_to_end()
            .filter(id__in=grant_ids)
            .select_related("user")
        )
        ended_at = timezone.now()
        for claim, final in (
            (Grant.Status.EXPIRING, Grant.Status.EXPIRED),
            (Grant.Status.REVOKING, Grant.Status.REVOKED),
        ):
            ids = [g.pk for g in claimed if g.status == claim]
            if ids:
                Grant.objects.filter(id__in=ids).update(status=final, ended_at=ended_at, failure_reason="")
        audit_record_many(
            [
                Entry(
                    action="grant.expired" if g.status == Grant.Status.EXPIRING else "grant.revoked",
                    obj=g,
                    partner_id=role.partner_id,
                    data={
                        "deny_cutoff": g.deny_cutoff.isoformat() if g.deny_cutoff else None,
                        "source_identity": g.user.source_identity,
                    },
                )
                for g in claimed
            ]
        )
        return len(claimed)


def queue_role_endings(role_id: int) -> None:
    queue.on_commit("grants.tasks.role_finish_endings", role_id)


@transaction.atomic
def grant_end_unused(grant: Grant) -> Grant:
    """A grant that never became active before its end: no session exists, so no deny is needed."""
    if Grant.objects.filter(pk=grant.pk, status=Grant.Status.PENDING).update(
        status=Grant.Status.EXPIRED, ended_at=timezone.now()
    ):
        audit_record(
            action="grant.expired", obj=grant, partner_id=grant.role.partner_id, data={"never_active": True}
        )
    grant.refresh_from_db()
    return grant
