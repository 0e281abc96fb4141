"""Retention: events older than PORTE_ACTIVITY_RETENTION_DAYS are purged, the rest kept; audited. On PostgreSQL
the events table is partitioned by month and a month goes whole, once all of it is past the retention (its files
with it); on SQLite events go row by row. Real moto S3 and the database the suite runs on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from activity import partitions, tasks
from activity import services as activity
from activity.models import ActivityAction, ActivityContext, ActivityEvent, TrailFile
from portal.models import AuditEvent
from tests.helpers import require_postgresql

pytestmark = [pytest.mark.django_db, pytest.mark.aws]

NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)  # retention 30 days: the cutoff is 2026-11-20 12:00


def test_purge_deletes_only_events_past_the_retention(simulator, acme, alice_cli, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ACTIVITY_RETENTION_DAYS = 30
    account = acme.partner.aws_account_id
    october = simulator.session_records(alice_cli, mint=False, at=datetime(2026, 10, 30, tzinfo=UTC), reads=6)
    november = simulator.session_records(
        alice_cli, mint=False, at=datetime(2026, 11, 10, tzinfo=UTC), reads=2
    )
    recent = simulator.session_records(alice_cli, mint=False, at=NOW - timedelta(hours=1), reads=3)
    # A principal seen in October only: what it is (its context: principal, address, user agent) goes with its
    # events; what is still in use stays.
    gone = simulator.iam_user_identity(account, "october-only")
    october.append(
        simulator.record(
            account, gone, "s3.amazonaws.com", "GetObjectOctober", at=datetime(2026, 10, 30, 0, 1, tzinfo=UTC)
        )
    )
    with time_machine.travel(NOW, tick=False):
        # One file wholly in October, one of November (older than 30 days, in the month of the cutoff), one recent.
        simulator.write_log(account, october, at=datetime(2026, 10, 30, 0, 5, tzinfo=UTC))
        simulator.write_log(account, november, at=datetime(2026, 11, 10, 0, 5, tzinfo=UTC))
        simulator.write_log(account, recent, at=NOW - timedelta(minutes=50))
        activity.activity_ingest()
        assert TrailFile.objects.count() == 3
        total = len(october) + len(november) + len(recent)
        assert ActivityEvent.objects.count() == total
        by_month = partitions.enabled()
        assert by_month == (connection.vendor == "postgresql")
        if by_month:
            # Ingestion created the months its files needed; each event is in its month's partition.
            assert {partitions.month_of(datetime(2026, m, 1, tzinfo=UTC)) for m in (10, 11, 12)} <= set(
                partitions.months()
            )
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM activity_event_default")
                assert cursor.fetchone()[0] == 0
        purged = len(october) if by_month else len(october) + len(november)

        assert ActivityContext.objects.filter(principal_arn__endswith=":user/october-only").exists()
        assert activity.activity_purge(batch=4) == purged
        # Every event left still has its action and context; those of the purged events alone are gone.
        left = ActivityEvent.objects.all()
        assert set(ActivityContext.objects.values_list("pk", flat=True)) == {e.context_id for e in left}
        assert set(ActivityAction.objects.values_list("pk", flat=True)) == {e.action_id for e in left}
        if by_month:
            assert not ActivityContext.objects.filter(principal_arn__endswith=":user/october-only").exists()
            assert not ActivityAction.objects.filter(event_name="GetObjectOctober").exists()
        assert ActivityEvent.objects.count() == total - purged
        assert not ActivityEvent.objects.filter(event_time__lt=datetime(2026, 11, 1, tzinfo=UTC)).exists()
        if by_month:
            assert partitions.month_of(datetime(2026, 10, 1, tzinfo=UTC)) not in partitions.months()
            # The coming months exist ahead of ingestion.
            assert {datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)} <= set(
                partitions.months()
            )
        # Every event left still has its record in its file.
        assert all(e.record["eventID"] == str(e.event_id) for e in ActivityEvent.objects.all())
        assert TrailFile.objects.count() == (2 if by_month else 1)
        audit = AuditEvent.objects.get(action="activity.purged")
        assert (audit.data["events"], audit.data["files"], audit.data["days"]) == (
            purged,
            1 if by_month else 2,
            30,
        )

        # Nothing more to purge: no second audit event.
        assert tasks.activity_purge() == 0
        assert AuditEvent.objects.filter(action="activity.purged").count() == 1


def test_events_outside_every_month_are_kept_and_move_when_their_month_is_made(
    simulator, acme, alice_cli
) -> None:  # type: ignore[no-untyped-def]
    require_postgresql("the month partitions")
    account = acme.partner.aws_account_id
    long_ago = datetime(2019, 3, 4, 5, 6, tzinfo=UTC)
    # A record whose time is years before its file (nothing CloudTrail writes, but nothing is refused for it).
    records = simulator.session_records(alice_cli, mint=False, at=long_ago, reads=2)
    simulator.write_log(account, records, at=datetime.now(UTC) - timedelta(minutes=5))
    activity.activity_ingest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM activity_event_default")
        assert cursor.fetchone()[0] == len(records)
        assert partitions.ensure([long_ago]) == [datetime(2019, 3, 1, tzinfo=UTC)]
        cursor.execute("SELECT count(*) FROM activity_event_default")
        assert cursor.fetchone()[0] == 0
        cursor.execute("SELECT count(*) FROM activity_event_201903")
        assert cursor.fetchone()[0] == len(records)
    assert ActivityEvent.objects.filter(event_time__year=2019).count() == len(records)
    assert partitions.ensure([long_ago]) == []  # made once
