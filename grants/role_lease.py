"""One writer of a role's IAM at a time, without a row lock or a transaction held across an AWS call.

A writer claims the role with a conditional UPDATE committed at once (a lease of IAM_LEASE_SECONDS), calls AWS with
nothing held in the database, then releases the lease. A writer that finds the role claimed leaves: whoever holds
the lease computes the revocation document from the database when it writes, so it covers what the other writer
came for, and anything claimed later is picked up by the next sweep. A writer that dies leaves a lease that runs
out on its own.

After AWS failures the role is backed off (2, 4, 8, then every 10 s; `iam_retry_at`), and so are the other roles of the
same partner when AWS itself is unavailable: one partner's outage costs the others at most one timeout per
backoff, never a queue behind it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Least
from django.utils import timezone

from grants.models import Role

BACKOFF_MAX_SECONDS = 10


class RoleBusy(Exception):
    """Another writer holds the role's IAM lease."""


@contextmanager
def role_iam_lease(role_id: int) -> Iterator[None]:
    token = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        claimed = (
            Role.objects.filter(pk=role_id)
            .filter(Q(iam_lease_until__isnull=True) | Q(iam_lease_until__lt=now))
            .update(
                iam_lease_until=now + timedelta(seconds=settings.IAM_LEASE_SECONDS), iam_lease_token=token
            )
        )
    if not claimed:
        raise RoleBusy(role_id)
    try:
        yield
    finally:
        Role.objects.filter(pk=role_id, iam_lease_token=token).update(
            iam_lease_until=None, iam_lease_token=""
        )


def ready_roles(role_ids: set[int], now: datetime) -> set[int]:
    """Those not backed off after a failure."""
    backed_off = Role.objects.filter(pk__in=role_ids, iam_retry_at__gt=now).values_list("pk", flat=True)
    return role_ids - set(backed_off)


def record_failure(role: Role, *, whole_partner: bool) -> None:
    """Back the role off (and every role of its partner when AWS itself did not answer)."""
    failures = role.iam_failures + 1
    delay = timedelta(seconds=min(BACKOFF_MAX_SECONDS, 2**failures))
    roles = (
        Role.objects.filter(partner_id=role.partner_id) if whole_partner else Role.objects.filter(pk=role.pk)
    )
    roles.update(iam_failures=Least(F("iam_failures") + 1, 30), iam_retry_at=timezone.now() + delay)


def record_success(role: Role) -> None:
    if role.iam_failures or role.iam_retry_at:
        Role.objects.filter(pk=role.pk).update(iam_failures=0, iam_retry_at=None)
