"""Which accounts' activity Porte reads: the partners' dedicated accounts, and nothing else of the organisation.

Porte answers for what partners do. The management account and the organisation's other member accounts are not
read (however many there are, they cost nothing), nor are other organisations' logs that share the bucket. A
partner's account is read from its first log file on; once the partner is offboarded, for a day past its last
grant's end (CloudTrail delivers within about 15 minutes; a late file within the day is still attributed), then no
more.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Max
from django.db.models.functions import Coalesce
from django.utils import timezone

from grants.models import Grant
from partners.models import Partner

OFFBOARDED_READ_FOR = timedelta(days=1)


def accounts_in_scope(*, now: datetime | None = None) -> dict[str, int]:
    """The accounts whose activity is ingested now: account id → its partner's id."""
    now = now or timezone.now()
    accounts = dict(
        Partner.objects.exclude(aws_account_id="")
        .exclude(status=Partner.Status.OFFBOARDED)
        .values_list("aws_account_id", "pk")
    )
    last_ends = (
        Grant.objects.filter(role__partner__status=Partner.Status.OFFBOARDED)
        .exclude(role__partner__aws_account_id="")
        .values("role__partner__aws_account_id", "role__partner_id")
        .annotate(last=Max(Coalesce("ended_at", "ends_at")))
        .filter(last__gt=now - OFFBOARDED_READ_FOR)
    )
    for row in last_ends:
        accounts[row["role__partner__aws_account_id"]] = row["role__partner_id"]
    return accounts
