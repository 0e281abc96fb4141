"""The staff home page: the count of every queue waiting for a staff member, the partners onboarding with their
checklist, and nobody else may see it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from activity.models import Alert, QuarantinedObject
from approvals import changes
from approvals.models import ApprovalPolicy
from approvals.services import request_create
from partners import invitations
from partners import services as partner_services
from partners.models import PartnerInvitation
from portal.models import User
from reviews.services import review_campaign_start
from tests.fixtures.domain import build_partner, make_member, make_staff, sign_in_as

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client()
    sign_in_as(client, user)
    return client


def _counts(client: Client) -> dict[str, int]:
    response = client.get("/staff/")
    assert response.status_code == 200
    return {queue.title: queue.count for queue in response.context["queues"]}


def test_staff_home_counts_what_waits_for_this_staff_member() -> None:
    acme = build_partner("acme", provision=False)
    sam, sue = make_staff("sam"), make_staff("sue")
    alice = make_member(acme.partner, "alice")
    ApprovalPolicy.objects.create(role=acme.role, approvals_required=1)
    request_create(
        requester=alice, role=acme.role, justification="Inventory check 42", duration=timedelta(minutes=30)
    )
    changes.role_change_propose(role=acme.role, author=sue, changes={"eligible_groups": ["engineers", "ops"]})
    review_campaign_start(partner=acme.partner, actor=sam)
    QuarantinedObject.objects.create(bucket="trail", key="AWSLogs/bad.json.gz", error="not gzip")
    now = timezone.now()
    for key, acknowledged in (("open", None), ("seen", now)):
        Alert.objects.create(
            rule=Alert.Rule.SENSITIVE_ACTION,
            severity=Alert.Severity.HIGH,
            dedupe_key=key,
            summary="iam:CreateUser by a Porte session",
            first_event_at=now,
            last_event_at=now,
            acknowledged_at=acknowledged,
            acknowledged_by=sam if acknowledged else None,
        )
    globex = partner_services.partner_create(name="Globex Corp", slug="globex", domains=["globex.example"])
    for email, handed_in in (("old@globex.example", now), ("it@globex.example", None)):
        invitation, _ = invitations.invitation_create(partner=globex, email=email, actor=sam)
        PartnerInvitation.objects.filter(pk=invitation.pk).update(submitted_at=handed_in)

    counts = _counts(client_for(sam))
    # Globex's second invitation withdrew the first, handed in: the current one is not handed in yet.
    assert counts["Partner identity providers handed in for review"] == 0
    PartnerInvitation.objects.filter(email="it@globex.example").update(submitted_at=now)
    assert _counts(client_for(sam))["Partner identity providers handed in for review"] == 1
    assert counts["Access requests to approve"] == 1
    assert counts["Role changes awaiting a second person"] == 1
    assert counts["Open access reviews"] == 1
    assert counts["Quarantined CloudTrail files"] == 1
    assert counts["Break-glass access to review"] == 0
    assert counts["Security alerts not yet acknowledged"] == 1
    # Sue proposed the change: it is not hers to approve.
    assert _counts(client_for(sue))["Role changes awaiting a second person"] == 0

    # The role list says which role waits for a second staff member.
    roles_page = client_for(sam).get("/staff/partners/acme/roles/").content.decode()
    assert "1 change awaiting a second staff member" in roles_page

    response = client_for(sam).get("/staff/")
    onboarding = response.context["onboarding"]
    assert [row.partner.slug for row in onboarding] == ["globex"]
    assert onboarding[0].done == 0 and len(onboarding[0].steps) >= 9
    assert b"Dedicated AWS account" in response.content


def test_staff_home_is_not_found_for_partner_users() -> None:
    acme = build_partner("acme", provision=False)
    admin = make_member(acme.partner, "pat", partner_admin=True)
    assert client_for(admin).get("/staff/").status_code == 404
    assert client_for(make_member(acme.partner, "alice")).get("/staff/").status_code == 404


def test_partner_approver_dashboard_points_to_requests_waiting_for_them() -> None:
    acme = build_partner("acme", provision=False)
    alice = make_member(acme.partner, "alice")
    pat = make_member(acme.partner, "pat", groups=("approvers",))
    ApprovalPolicy.objects.create(
        role=acme.role, approvals_required=1, approvers="partner", partner_approver_group="approvers"
    )
    request_create(
        requester=alice, role=acme.role, justification="Inventory check 42", duration=timedelta(minutes=30)
    )
    assert (
        "1 request from your colleagues waits for your approval" in client_for(pat).get("/").content.decode()
    )
    # The requester sees their own request waiting, not a call to approve it.
    page = client_for(alice).get("/").content.decode()
    assert "for your approval" not in page and "Waiting for approval" in page
