"""With every box real: Acme's IdP (oidc-provider) signs Alice in with a one-time password (amr otp); Porte keeps
the IdP's MFA evidence and simple claims with her session, a role that requires MFA and a posture claim accepts
her request on that evidence, a second person (staff) approves it, and the Celery worker activates the grant.
A role that requires a claim her IdP does not send refuses her, saying which claim."""

from __future__ import annotations

import pytest
import requests

from approvals import services as approvals
from approvals.models import ApprovalPolicy
from grants.models import AccessRequest, Grant
from portal.models import AuditEvent
from tests.fixtures.domain import build_partner, make_staff
from tests.helpers import begin_oidc_sign_in, csrf_headers, wait_for
from tests.peers.oidc_idp import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = {"role": "readonly", "justification": "Inventory check for TICKET-42", "duration_minutes": 30}


def test_idp_mfa_and_posture_evidence_decide_the_request(
    live_server, acme_idp, celery_worker_process, local_aws
):
    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret")
    policy = ApprovalPolicy.objects.create(
        role=world.role,
        approvals_required=1,
        approvers="staff",
        require_mfa=True,
        required_claim="device_compliant",
        required_claim_value="true",
    )
    http = requests.Session()
    sign_in(http, begin_oidc_sign_in(http, live_server.url, "acme"), "alice", "alice-pw")

    refused = http.post(f"{live_server.url}/api/v1/access-requests/", headers=csrf_headers(http), json=BODY)
    assert refused.status_code == 400
    assert "did not assert device_compliant=true" in refused.json()["context"][0]
    request = AccessRequest.objects.get(status=AccessRequest.Status.REFUSED)
    assert request.context["mfa"] is True and "otp" in request.context["authn_methods"]
    assert AuditEvent.objects.get(action="request.refused").data["condition"] == "device_posture"

    # The IdP does assert a verified email: as the required claim, the request goes to approval.
    ApprovalPolicy.objects.filter(pk=policy.pk).update(required_claim="email_verified")
    created = http.post(f"{live_server.url}/api/v1/access-requests/", headers=csrf_headers(http), json=BODY)
    assert created.status_code == 202, created.text
    pending = AccessRequest.objects.get(pk=created.json()["id"])
    assert pending.status == AccessRequest.Status.PENDING
    assert pending.context["claims"]["email_verified"] == ["true"]

    approvals.request_approve(request_id=pending.pk, approver=make_staff("sam"))
    grant = Grant.objects.get(request=pending)
    wait_for(
        lambda: Grant.objects.get(pk=grant.pk).status == Grant.Status.ACTIVE,
        timeout=30,
        what=celery_worker_process.output,
    )
