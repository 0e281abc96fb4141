"""The staff alerts page: list with filters, acknowledgement (audited), and nothing for anybody else (404)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from activity.alerts.rules import Draft
from activity.alerts.services import alerts_record
from activity.models import Alert
from portal.models import AuditEvent
from tests.fixtures.domain import sign_in_as

pytestmark = pytest.mark.django_db


def _alert(acme, rule: str, severity: str, key: str, summary: str) -> Alert:  # type: ignore[no-untyped-def]
    at = timezone.now() - timedelta(minutes=5)
    draft = Draft(
        rule=rule,
        severity=severity,
        dedupe_key=key,
        summary=summary,
        event_ids=["e1"],
        event_count=1,
        first_event_at=at,
        last_event_at=at,
        partner_id=acme.partner.pk,
    )
    [alert] = alerts_record(drafts=[draft])
    return alert


@pytest.fixture
def two_alerts(acme):  # type: ignore[no-untyped-def]
    return (
        _alert(acme, Alert.Rule.SENSITIVE_ACTION, Alert.Severity.CRITICAL, "k1", "StopLogging by intruder"),
        _alert(acme, Alert.Rule.NEW_SOURCE_IP, Alert.Severity.LOW, "k2", "alice acted from 198.51.100.77"),
    )


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    sign_in_as(client, user)
    return client


def test_staff_see_filter_and_acknowledge_alerts(staff, two_alerts) -> None:  # type: ignore[no-untyped-def]
    critical, _low = two_alerts
    client = _client(staff)
    page = client.get("/staff/alerts/").content.decode()
    assert "StopLogging by intruder" in page and "198.51.100.77" in page
    assert 'href="/staff/alerts/"' in page  # in the staff navigation
    only_sensitive = client.get("/staff/alerts/?rule=sensitive_action").content.decode()
    assert "StopLogging by intruder" in only_sensitive and "198.51.100.77" not in only_sensitive
    assert "198.51.100.77" not in client.get("/staff/alerts/?severity=critical").content.decode()

    refused = client.post(f"/staff/alerts/{critical.pk}/acknowledge/", {"note": "  "})
    assert refused.status_code == 400 and "Nothing was changed" in refused.content.decode()
    critical.refresh_from_db()
    assert critical.acknowledged_at is None

    done = client.post(f"/staff/alerts/{critical.pk}/acknowledge/", {"note": "Trail restarted; key rotated."})
    assert done.status_code == 302 and done["Location"] == "/staff/alerts/"
    critical.refresh_from_db()
    assert (
        critical.acknowledged_by == staff and critical.acknowledgement_note == "Trail restarted; key rotated."
    )
    audit = AuditEvent.objects.get(action="alert.acknowledged")
    assert audit.actor == staff and audit.object_id == str(critical.pk)
    # Open alerts by default; the acknowledged one under its filter.
    assert "StopLogging by intruder" not in client.get("/staff/alerts/").content.decode()
    assert "Trail restarted" in client.get("/staff/alerts/?status=acknowledged").content.decode()
    # Twice: refused, the first acknowledgement stays.
    client.post(f"/staff/alerts/{critical.pk}/acknowledge/", {"note": "again"})
    critical.refresh_from_db()
    assert critical.acknowledgement_note == "Trail restarted; key rotated."
    assert AuditEvent.objects.filter(action="alert.acknowledged").count() == 1


def test_partner_users_find_no_alerts(alice, mallory, two_alerts) -> None:  # type: ignore[no-untyped-def]
    critical, _ = two_alerts
    for user in (alice, mallory):
        client = _client(user)
        assert client.get("/staff/alerts/").status_code == 404
        assert (
            client.post(f"/staff/alerts/{critical.pk}/acknowledge/", {"note": "mine now"}).status_code == 404
        )
        assert client.get("/staff/metrics/").status_code == 404
    critical.refresh_from_db()
    assert critical.acknowledged_at is None
    anonymous = Client().get("/staff/alerts/")
    assert anonymous.status_code == 302 and "/staff/alerts/" in anonymous["Location"]


def test_a_missing_alert_is_404(staff) -> None:  # type: ignore[no-untyped-def]
    assert _client(staff).post("/staff/alerts/999999/acknowledge/", {"note": "x"}).status_code == 404
