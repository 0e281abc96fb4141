"""A rule that fails (here a rule made to raise, standing for a bug a crafted record could trigger) neither stops
ingestion nor goes unseen: the events are stored, what the rules did for that batch is undone, staff get one alert
saying which events were not judged, and the next batch is judged as usual."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from activity import services as activity
from activity.alerts import rules, services
from activity.models import ActivityEvent, Alert
from portal.models import AuditEvent, Notification
from tests.fixtures.domain import make_staff

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


def _broken(batch: rules.Batch) -> list[rules.Draft]:
    raise KeyError("userIdentity")


def test_a_failing_rule_is_an_alert_and_ingestion_goes_on(
    simulator, acme, alice_cli, monkeypatch, staff
) -> None:  # type: ignore[no-untyped-def]
    make_staff("olivia", email="olivia@porte.example")  # on call: alerts are emailed to staff
    account = acme.partner.aws_account_id
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=30)
    refused: list[dict[str, Any]] = simulator.session_records(
        alice_cli, at=start, mint=False, reads=2, denied=12
    )
    simulator.write_log(account, refused, at=start)
    # The burst rule runs (and would raise a burst alert) before the broken one fails.
    monkeypatch.setattr(services, "RULES", (rules.denied_bursts, _broken))

    report = activity.activity_ingest()

    assert report.events_inserted == len(refused) == ActivityEvent.objects.count()
    [alert] = Alert.objects.all()
    assert (alert.rule, alert.severity) == (Alert.Rule.RULES_FAILED, Alert.Severity.HIGH)
    assert alert.event_count == len(refused) and alert.detail["error"] == "KeyError"
    assert "were not judged" in alert.summary
    assert AuditEvent.objects.filter(action="alert.created", object_id=str(alert.pk)).exists()
    assert Notification.objects.filter(event="alert.created", subject__contains="Alert rules failed").exists()

    # Mended: the next file is judged again.
    monkeypatch.setattr(services, "RULES", rules.RULES)
    later = start + timedelta(minutes=20)
    simulator.write_log(
        account, simulator.session_records(alice_cli, at=later, mint=False, denied=12), at=later
    )
    activity.activity_ingest()
    assert Alert.objects.filter(rule=Alert.Rule.DENIED_BURST).count() == 1
