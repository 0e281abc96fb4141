"""Alerts end to end through ingestion from the moto trail bucket: idempotent (a file read again, or a file that
repeats events already stored, raises nothing twice), audited, and emailed to staff once per alert."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from activity import services as activity
from activity.models import Alert, TrailCursor
from grants.models import Grant
from portal import notifications
from portal.models import AuditEvent, Notification
from tests.activity.alerting import alerts
from tests.fixtures.domain import make_staff

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


@pytest.fixture
def on_call(db):  # type: ignore[no-untyped-def]
    return make_staff("olivia", email="olivia@porte.example")


def _incident_files(simulator, acme, alice_cli):  # type: ignore[no-untyped-def]
    """A burst of refused calls and a sensitive change by Alice's session, and use after the grant ended."""
    account = acme.partner.aws_account_id
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=30)
    identity = simulator.porte_identity(alice_cli)
    denied = [
        simulator.record(
            account,
            identity,
            "s3.amazonaws.com",
            "DeleteBucket",
            at=start + timedelta(seconds=5 * i),
            read_only=False,
            error=("AccessDenied", "no"),
        )
        for i in range(12)
    ]
    change = simulator.record(
        account,
        identity,
        "iam.amazonaws.com",
        "PutRolePolicy",
        at=start + timedelta(minutes=2),
        read_only=False,
    )
    first = denied[:8]
    second = [*denied[8:], change]
    return [
        simulator.write_log(account, first, at=start),
        simulator.write_log(account, second, at=start + timedelta(minutes=5)),
    ], (first, second)


def test_reingesting_files_raises_no_alert_twice(
    simulator, acme, alice_cli, on_call, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    _, (first, _second) = _incident_files(simulator, acme, alice_cli)
    report = activity.activity_ingest()
    assert report.objects == 2 and report.quarantined == 0
    burst, change = alerts(Alert.Rule.DENIED_BURST), alerts(Alert.Rule.SENSITIVE_ACTION)
    assert len(burst) == 1 and burst[0].event_count == 12
    assert len(change) == 1 and change[0].event_count == 1
    assert Notification.objects.filter(event="alert.created").count() == 2
    assert AuditEvent.objects.filter(action="alert.created").count() == 2

    # The same files again (cursors forgotten) and a file repeating stored events plus one new refusal.
    TrailCursor.objects.all().delete()
    account = acme.partner.aws_account_id
    late = simulator.record(
        account,
        simulator.porte_identity(alice_cli),
        "s3.amazonaws.com",
        "DeleteBucket",
        at=timezone.now() - timedelta(minutes=29),
        read_only=False,
        error=("AccessDenied", "no"),
    )
    simulator.write_log(account, [*first, late], at=timezone.now() - timedelta(minutes=20))
    again = activity.activity_ingest()
    assert again.objects == 3 and again.events_inserted == 1
    assert len(alerts()) == 2  # nothing new raised
    burst[0].refresh_from_db()
    assert burst[0].event_count == 13  # the one new refusal joined the burst; the repeated ones did not count
    assert Notification.objects.filter(event="alert.created").count() == 2
    assert AuditEvent.objects.filter(action="alert.created").count() == 2


def test_each_alert_is_emailed_to_staff_once(
    simulator, acme, alice_cli, on_call, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    Grant.objects.filter(pk=alice_cli.grant_id).update(
        status=Grant.Status.EXPIRED,
        starts_at=timezone.now() - timedelta(hours=2),
        ends_at=timezone.now() - timedelta(hours=1),
        ended_at=timezone.now() - timedelta(hours=1),
    )
    account = acme.partner.aws_account_id
    records = simulator.session_records(
        alice_cli, at=timezone.now() - timedelta(minutes=10), mint=False, reads=3, writes=1, denied=0
    )
    simulator.write_log(account, records, at=timezone.now() - timedelta(minutes=10))
    with django_capture_on_commit_callbacks(execute=False):
        activity.activity_ingest()
    [alert] = alerts(Alert.Rule.AFTER_GRANT_END)
    [notice] = Notification.objects.filter(event="alert.created")
    assert notice.recipients == ["olivia@porte.example"]
    notifications.notification_deliver(notification_id=notice.pk)
    notifications.notification_deliver(notification_id=notice.pk)  # a replayed task sends nothing more
    [email] = mail.outbox
    assert email.to == ["olivia@porte.example"]
    assert email.subject == "[Porte] Critical alert: Credentials used after their grant ended"
    assert f"/staff/alerts/?alert={alert.pk}" in email.body and f"Grant #{alice_cli.grant_id}" in email.body
    assert alice_cli.access_key_id not in email.body  # no credential material in a notice
    audit = AuditEvent.objects.get(action="alert.created")
    assert audit.object_id == str(alert.pk) and audit.partner_id == acme.partner.pk
    assert audit.data == {"rule": "after_grant_end", "severity": "critical", "events": 4}
