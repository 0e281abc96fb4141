"""Context conditions, checked when requesting (and, for the window and networks, when minting): each refusal
says which condition failed, is recorded (a `refused` AccessRequest keeping the evidence, and a
`request.refused` / `credential.refused` audit event naming the condition), and credentials never outlive the
partner's access window (DurationSeconds and the session policy's aws:CurrentTime guard).

moto does not evaluate aws:CurrentTime: the tests assert the documents Porte sends to STS, exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from django.utils import timezone

from approvals.context import window_refusal
from approvals.services import request_create
from grants import policies
from grants.models import AccessRequest, CredentialIssue, Grant
from grants.services import activation, minting
from partners.adapter import SIGN_IN_EVIDENCE_KEY
from partners.models import Partner
from portal import aws
from portal.models import AuditEvent
from tests.approvals.conftest import client_for, set_policy

pytestmark = pytest.mark.django_db

FORM = "/requests/new/"
BODY = {"duration_minutes": 30, "justification": "Inventory check for TICKET-42"}


def _with_evidence(user, evidence, **client_defaults):  # type: ignore[no-untyped-def]
    client = client_for(user, **client_defaults)
    session = client.session
    session[SIGN_IN_EVIDENCE_KEY] = evidence
    session.save()
    return client


def _refused(condition: str) -> AccessRequest:
    request = AccessRequest.objects.get(status=AccessRequest.Status.REFUSED)
    assert request.context["refused"] == condition
    event = AuditEvent.objects.get(action="request.refused", object_id=str(request.pk))
    assert event.data["condition"] == condition
    assert not Grant.objects.filter(request=request).exists()
    return request


def test_the_window_refusal_names_the_window_and_when_it_opens_again(acme):
    Partner.objects.filter(pk=acme.partner.pk).update(
        access_timezone="Europe/Paris", access_days=[0, 1, 2, 3, 4], access_start=time(8), access_end=time(18)
    )
    partner = Partner.objects.get(pk=acme.partner.pk)
    saturday_noon = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    refusal = window_refusal(partner, saturday_noon)
    assert refusal is not None and refusal.condition == "access_window"
    assert refusal.message == (
        "Acme Corp's access window is Mon, Tue, Wed, Thu, Fri 08:00-18:00 (Europe/Paris); "
        "it opens again at Mon 2026-11-30 08:00 (Europe/Paris)."
    )
    assert window_refusal(partner, datetime(2026, 11, 30, 8, 30, tzinfo=UTC)) is None


def test_requests_outside_the_window_are_refused_and_recorded(acme, alice):
    Partner.objects.filter(pk=acme.partner.pk).update(
        access_timezone="Europe/Paris", access_days=[0, 1, 2, 3, 4], access_start=time(8), access_end=time(18)
    )
    with time_machine.travel(datetime(2026, 11, 28, 11, 0, tzinfo=UTC)):  # a Saturday
        response = client_for(alice).post(FORM, {"role": acme.role.pk, **BODY})
    assert response.status_code == 400
    assert "access window is Mon, Tue, Wed, Thu, Fri 08:00-18:00 (Europe/Paris); it opens again at Mon" in (
        response.content.decode()
    )
    _refused("access_window")


def test_requests_from_outside_the_partner_networks_are_refused_and_recorded(acme, alice):
    Partner.objects.filter(pk=acme.partner.pk).update(source_ip_allowlist=["198.51.100.0/24"])
    response = client_for(alice, REMOTE_ADDR="203.0.113.9").post(FORM, {"role": acme.role.pk, **BODY})
    assert response.status_code == 400
    assert "Acme Corp allows access only from its registered networks; 203.0.113.9 is not one of them." in (
        response.content.decode()
    )
    assert _refused("source_ip").context["source_ip"] == "203.0.113.9"
    ok = client_for(alice, REMOTE_ADDR="198.51.100.7").post(FORM, {"role": acme.role.pk, **BODY})
    assert ok.status_code == 302


def test_roles_requiring_mfa_refuse_a_sign_in_without_it(acme, alice):
    set_policy(acme.role, require_mfa=True)
    client = _with_evidence(
        alice, {"provider_id": "acme", "mfa": False, "authn_methods": ["pwd"], "claims": {}}
    )
    response = client.post(FORM, {"role": acme.role.pk, **BODY})
    assert response.status_code == 400
    assert "This role needs a sign-in with multi-factor authentication" in response.content.decode()
    refused = _refused("mfa")
    assert refused.context["authn_methods"] == ["pwd"] and refused.context["mfa"] is False
    # The API (a token, no sign-in evidence) is refused the same way.
    api = client_for(alice).post(
        "/api/v1/access-requests/",
        {"role": "readonly", "duration_minutes": 30, "justification": BODY["justification"]},
        content_type="application/json",
    )
    assert api.status_code == 400 and "multi-factor" in api.json()["context"][0]

    with_mfa = _with_evidence(
        alice, {"provider_id": "acme", "mfa": True, "authn_methods": ["pwd", "otp"], "claims": {}}
    )
    assert with_mfa.post(FORM, {"role": acme.role.pk, **BODY}).status_code == 302
    approved = AccessRequest.objects.get(status=AccessRequest.Status.APPROVED)
    assert approved.context["mfa"] is True and approved.context["authn_methods"] == ["pwd", "otp"]


def test_device_posture_claim_is_required_where_the_role_says_so(acme, alice):
    set_policy(acme.role, required_claim="device_compliant", required_claim_value="true")
    client = _with_evidence(
        alice, {"provider_id": "acme", "mfa": True, "authn_methods": ["otp"], "claims": {}}
    )
    response = client.post(FORM, {"role": acme.role.pk, **BODY})
    assert response.status_code == 400
    assert "your identity provider did not assert device_compliant=true" in response.content.decode()
    _refused("device_posture")
    compliant = _with_evidence(
        alice,
        {
            "provider_id": "acme",
            "mfa": True,
            "authn_methods": ["otp"],
            "claims": {"device_compliant": ["true"]},
        },
    )
    assert compliant.post(FORM, {"role": acme.role.pk, **BODY}).status_code == 302


def _active_grant(acme, alice, minutes: int = 120) -> Grant:  # type: ignore[no-untyped-def]
    request = request_create(
        requester=alice,
        role=acme.role,
        justification="Inventory check 42",
        duration=timedelta(minutes=minutes),
    )
    return activation.grant_activate(grant_id=request.grant.pk)


@pytest.mark.aws
def test_minting_outside_the_window_is_refused_and_recorded_and_the_grant_end_is_kept(acme, alice):
    grant = _active_grant(acme, alice)
    now = timezone.now()
    opens = (now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    closes = (now + timedelta(hours=3)).time().replace(second=0, microsecond=0)
    Partner.objects.filter(pk=acme.partner.pk).update(
        access_timezone="UTC", access_days=list(range(7)), access_start=opens, access_end=closes
    )
    with pytest.raises(minting.GrantNotUsable, match=r"access window is .*; it opens again at"):
        minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli")
    assert not CredentialIssue.objects.filter(grant=grant).exists()
    event = AuditEvent.objects.get(action="credential.refused", object_id=str(grant.pk))
    assert event.data["condition"] == "access_window"
    assert Grant.objects.get(pk=grant.pk).ends_at == grant.ends_at


@pytest.mark.aws
def test_credentials_never_outlive_the_window(acme, alice):
    """The window closes in 40 minutes, the grant in 2 hours: STS is asked for 40 minutes and the session policy
    denies everything after the window's close; the grant's own end is unchanged."""
    grant = _active_grant(acme, alice)
    now = timezone.now()
    close_at = (now + timedelta(minutes=40)).replace(second=0, microsecond=0)
    Partner.objects.filter(pk=acme.partner.pk).update(
        access_timezone="UTC",
        access_days=list(range(7)),
        access_start=(now - timedelta(hours=1)).time().replace(second=0, microsecond=0),
        access_end=close_at.time(),
    )
    sent: list[dict[str, object]] = []

    def capture(params, **_):  # type: ignore[no-untyped-def]
        sent.append(dict(params))

    sts = aws.using(aws.broker_credentials()).sts
    sts.meta.events.register("provide-client-params.sts.AssumeRole", capture)
    try:
        minted = minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli")
    finally:
        sts.meta.events.unregister("provide-client-params.sts.AssumeRole", capture)
    [call] = sent
    remaining = (close_at - minted.issue.issued_at).total_seconds()
    assert remaining - 5 <= call["DurationSeconds"] <= remaining
    assert json.loads(str(call["Policy"])) == policies.session_policy(ends_at=close_at)
    assert close_at - timedelta(seconds=5) <= minted.issue.expires_at <= close_at
    assert Grant.objects.get(pk=grant.pk).ends_at == grant.ends_at
