"""Retention: events older than PORTE_ACTIVITY_RETENTION_DAYS are purged in batches, the rest kept; audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from activity import services as activity
from activity import tasks
from activity.models import ActivityEvent, TrailFile
from portal.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


def test_purge_deletes_only_events_past_the_retention(simulator, acme, alice_cli, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ACTIVITY_RETENTION_DAYS = 30
    account = acme.partner.aws_account_id
    now = timezone.now().replace(microsecond=0)
    old = simulator.session_records(
        alice_cli, mint=False, at=now - timedelta(days=31), reads=6, writes=2, denied=1
    )
    edge = simulator.session_records(
        alice_cli, mint=False, at=now - timedelta(days=29), reads=2, writes=0, denied=0
    )
    recent = simulator.session_records(alice_cli, mint=False, at=now - timedelta(hours=1), reads=3)
    # One file wholly past the retention, one straddling it.
    simulator.write_log(account, old[:4], at=now - timedelta(days=31))
    simulator.write_log(account, old[4:] + edge + recent, at=now)
    activity.activity_ingest()
    assert TrailFile.objects.count() == 2
    total = ActivityEvent.objects.count()
    expected_purged = len(old)
    assert total == len(old) + len(edge) + len(recent)

    assert activity.activity_purge(now=now, batch=4) == expected_purged  # in three batches
    assert ActivityEvent.objects.count() == total - expected_purged
    assert not ActivityEvent.objects.filter(event_time__lt=now - timedelta(days=30)).exists()
    # The old file went with its events; the other keeps the records of the events still there.
    (kept,) = TrailFile.objects.all()
    assert all(e.record["eventID"] == str(e.event_id) for e in ActivityEvent.objects.all())
    assert kept.events == len(old[4:] + edge + recent)
    purge = AuditEvent.objects.get(action="activity.purged")
    assert (purge.data["events"], purge.data["files"], purge.data["days"]) == (expected_purged, 1, 30)

    # Nothing more to purge: no second audit event.
    assert tasks.activity_purge() == 0
    assert AuditEvent.objects.filter(action="activity.purged").count() == 1
