"""Approval policies: N distinct approvers (never the requester), denial with a reason, lapse of undecided
requests (by the real beat), break-glass (immediate, loud, reviewed afterwards), and the notices of each event,
stored in the outbox and delivered (email through Django's locmem outbox, webhook to a loopback server).

Personas: Alice (Acme engineer, requester), Pat (Acme partner admin), Sam and Sue (Porte staff)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from approvals import services as approvals
from approvals.models import Approval, BreakGlassReview
from approvals.services import grant_extend, request_create
from grants.models import AccessRequest, Grant
from grants.services import activation
from partners.models import Partner
from portal.models import AuditEvent, Notification
from tests.approvals.conftest import client_for, deliver, mails_to, set_policy
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db

FORM = "/requests/new/"
REASON = "Inventory check for TICKET-42"


def _request_via_form(user, role, **extra):  # type: ignore[no-untyped-def]
    return client_for(user).post(
        FORM, {"role": role.pk, "duration_minutes": 30, "justification": REASON, **extra}
    )


def test_two_distinct_approvers_are_needed_and_a_second_click_counts_once(acme, alice, sam, pat):
    set_policy(acme.role, approvals_required=2, approvers="either")
    response = _request_via_form(alice, acme.role)
    request = AccessRequest.objects.get(requester=alice)
    assert response.status_code == 302 and response["Location"] == f"/requests/{request.pk}/"
    assert request.status == AccessRequest.Status.PENDING
    assert not Grant.objects.filter(request=request).exists()
    # The approvers (staff and Acme's admin, never Alice) are told of the new request.
    [pending] = deliver("request.pending")
    assert set(pending.recipients) == {"sam@porte.example", "pat@acme.example"}
    assert mails_to("pat@acme.example") == [f"[Porte] {alice.display_name} requests Read-only (Acme Corp)"]

    staff_client = client_for(sam)
    staff_client.post(f"/requests/{request.pk}/approve/")
    staff_client.post(f"/requests/{request.pk}/approve/")  # the same person again
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.PENDING
    assert Approval.objects.filter(request=request).count() == 1

    api = client_for(pat).post(f"/api/v1/access-requests/{request.pk}/approve/")
    assert api.status_code == 200, api.content
    assert api.json()["status"] == "approved" and api.json()["approvals"] == 2
    request.refresh_from_db()
    assert request.decided_by == pat
    grant = Grant.objects.get(request=request)
    assert grant.status == Grant.Status.PENDING  # activation is queued on commit
    event = AuditEvent.objects.get(action="request.approved", object_id=str(request.pk))
    assert sorted(event.data["approvers"]) == sorted([str(sam.public_id), str(pat.public_id)])
    [decision] = deliver("request.approved")
    assert decision.recipients == ["alice@acme.example"]
    assert mails_to("alice@acme.example") == ["[Porte] Access to Read-only approved"]


def test_the_requester_cannot_approve_their_own_request_by_page_or_api(acme, pat):
    set_policy(acme.role, approvals_required=1, approvers="partner")
    response = _request_via_form(pat, acme.role)
    request = AccessRequest.objects.get(requester=pat)
    assert response.status_code == 302

    page = client_for(pat).post(f"/requests/{request.pk}/approve/", follow=True)
    assert "You cannot decide on your own request: another approver must." in page.content.decode()
    api = client_for(pat).post(f"/api/v1/access-requests/{request.pk}/approve/")
    assert api.status_code == 403
    assert api.json() == {"detail": "You cannot decide on your own request: another approver must."}
    deny = client_for(pat).post(
        f"/api/v1/access-requests/{request.pk}/deny/",
        {"reason": "changed my mind"},
        content_type="application/json",
    )
    assert deny.status_code == 403
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.PENDING
    assert not Approval.objects.filter(request=request).exists()


def test_partner_approvers_can_be_an_idp_group_instead_of_the_admins(acme, alice, pat):
    from tests.fixtures.domain import make_member

    set_policy(acme.role, approvals_required=1, approvers="partner", partner_approver_group="approvers")
    lead = make_member(acme.partner, "lena", groups=("engineers", "approvers"))
    request = request_create(
        requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=30)
    )
    # Pat is a partner admin but not in the approvers group: not an approver, so the request is not found.
    assert client_for(pat).post(f"/requests/{request.pk}/approve/").status_code == 404
    queue = client_for(lead).get("/partner/approvals/")
    assert f"/requests/{request.pk}/" in queue.content.decode()
    client_for(lead).post(f"/requests/{request.pk}/approve/")
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.APPROVED


def test_denial_needs_a_reason_and_the_requester_is_told_it(acme, alice, sam):
    set_policy(acme.role, approvals_required=1, approvers="staff")
    request = request_create(
        requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=30)
    )
    staff_client = client_for(sam)
    page = staff_client.post(f"/requests/{request.pk}/deny/", {"reason": ""}, follow=True)
    assert "Say why the request is denied: the requester is told." in page.content.decode()
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.PENDING

    staff_client.post(f"/requests/{request.pk}/deny/", {"reason": "Use the staging account instead"})
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.DENIED
    assert request.decision_reason == "Use the staging account instead"
    assert not Grant.objects.filter(request=request).exists()
    assert AuditEvent.objects.get(action="request.denied").data == {
        "reason": "Use the staging account instead"
    }
    [notice] = deliver("request.denied")
    assert notice.recipients == ["alice@acme.example"]
    assert "denied: Use the staging account instead" in notice.body
    assert mails_to("alice@acme.example") == ["[Porte] Access to Read-only denied"]
    # A decided request cannot be decided again.
    again = client_for(sam).post(f"/requests/{request.pk}/approve/", follow=True)
    assert "This request is already denied." in again.content.decode()


def test_an_undecided_request_lapses_and_the_requester_is_told(acme, alice):
    set_policy(acme.role, approvals_required=1, approvers="staff", pending_ttl=timedelta(hours=1))
    request = request_create(
        requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=30)
    )
    assert approvals.requests_expire_pending() == 0
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        assert approvals.requests_expire_pending() == 1
        assert approvals.requests_expire_pending() == 0  # idempotent
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.EXPIRED
    [notice] = deliver("request.expired")
    assert notice.recipients == ["alice@acme.example"]
    assert mails_to("alice@acme.example") == ["[Porte] Your request for Read-only expired"]


@pytest.mark.aws
def test_expiring_soon_is_told_once_per_grant(acme, alice):
    request = request_create(
        requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=60)
    )
    grant = activation.grant_activate(grant_id=request.grant.pk)
    assert approvals.grants_notify_expiring() == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=50)):
        assert approvals.grants_notify_expiring() == 1
        assert approvals.grants_notify_expiring() == 0
    grant.refresh_from_db()
    assert grant.expiry_notified_at is not None
    [notice] = deliver("grant.expiring")
    assert notice.recipients == ["alice@acme.example"]
    assert mails_to("alice@acme.example") == ["[Porte] Your access to Read-only ends in 10 minutes"]


def test_break_glass_is_immediate_loud_and_reviewed_afterwards(acme, alice, pat, sam, sue, hook):
    Partner.objects.filter(pk=acme.partner.pk).update(webhook_url=hook.url)
    set_policy(acme.role, approvals_required=2, approvers="staff", break_glass_allowed=True)
    short = _request_via_form(alice, acme.role, break_glass="on")
    assert short.status_code == 400
    assert "Break-glass access needs a full justification (at least 40 characters)" in short.content.decode()

    justification = "INC-981: production database unreachable, checking the security groups now"
    response = client_for(alice).post(
        FORM,
        {"role": acme.role.pk, "duration_minutes": 30, "justification": justification, "break_glass": "on"},
    )
    request = AccessRequest.objects.get(requester=alice)
    grant = Grant.objects.get(request=request)
    assert response.status_code == 302 and response["Location"] == f"/grants/{grant.pk}/"
    assert request.status == AccessRequest.Status.APPROVED and request.is_break_glass
    loud = AuditEvent.objects.get(action="request.break_glass")
    assert loud.data["alert"] is True and loud.data["justification"] == justification
    review = BreakGlassReview.objects.get(request=request)
    assert review.is_open

    [notice] = deliver("request.break_glass")
    assert set(notice.recipients) == {"sam@porte.example", "sue@porte.example", "pat@acme.example"}
    assert notice.subject.startswith("BREAK-GLASS:")
    assert len(hook.bodies) == 1 and "BREAK-GLASS" in str(hook.bodies[0]["text"])
    assert all(mails_to(a) for a in ("sam@porte.example", "sue@porte.example", "pat@acme.example"))

    # The post-hoc review: staff close it with a verdict.
    staff_client = client_for(sam)
    assert f"/staff/break-glass/{review.pk}/" in staff_client.get("/staff/break-glass/").content.decode()
    # The review page leads to what was done under the grant.
    review_page = staff_client.get(f"/staff/break-glass/{review.pk}/").content.decode()
    assert f"/activity/?grant={grant.pk}" in review_page
    bad = staff_client.post(f"/staff/break-glass/{review.pk}/", {"verdict": "justified", "notes": ""})
    assert bad.status_code == 400
    staff_client.post(
        f"/staff/break-glass/{review.pk}/", {"verdict": "justified", "notes": "Incident confirmed by on-call"}
    )
    review.refresh_from_db()
    assert review.verdict == "justified" and review.reviewed_by == sam
    assert AuditEvent.objects.filter(action="break_glass.reviewed", object_id=str(review.pk)).exists()


def test_break_glass_only_where_the_role_allows_it(acme, alice):
    set_policy(acme.role, approvals_required=1, approvers="staff", break_glass_allowed=False)
    response = client_for(alice).post(
        FORM,
        {
            "role": acme.role.pk,
            "duration_minutes": 30,
            "justification": "INC-981: production database unreachable, checking the security groups now",
            "break_glass": "on",
        },
    )
    assert response.status_code == 400
    assert (
        "Read-only does not allow break-glass access: request it for approval." in response.content.decode()
    )
    assert not AccessRequest.objects.exists()


def test_auto_approval_can_require_mfa_else_one_approver_decides(acme, alice):
    set_policy(acme.role, approvals_required=0, approvers="staff", auto_approve_requires_mfa=True)
    from approvals.context import Evidence

    without = request_create(
        requester=alice,
        role=acme.role,
        justification=REASON,
        duration=timedelta(minutes=30),
        evidence=Evidence(mfa=False, origin="idp"),
    )
    assert without.status == AccessRequest.Status.PENDING
    AccessRequest.objects.filter(pk=without.pk).update(status=AccessRequest.Status.DENIED)
    with_mfa = request_create(
        requester=alice,
        role=acme.role,
        justification=REASON,
        duration=timedelta(minutes=30),
        evidence=Evidence(mfa=True, authn_methods=["otp"], origin="idp"),
    )
    assert with_mfa.status == AccessRequest.Status.APPROVED


@pytest.fixture
def worker_env(worker_env):  # type: ignore[no-untyped-def]
    return {**worker_env, "PORTE_APPROVALS_SWEEP_SECONDS": "0.5"}


@pytest.mark.django_db(transaction=True)
def test_the_beat_service_lapses_undecided_requests(acme, alice, celery_worker_process):
    set_policy(acme.role, approvals_required=1, approvers="staff", pending_ttl=timedelta(minutes=5))
    # The request was made six minutes ago: its approval time is over.
    with time_machine.travel(timezone.now() - timedelta(minutes=6)):
        request = request_create(
            requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=30)
        )
    wait_for(
        lambda: AccessRequest.objects.get(pk=request.pk).status == AccessRequest.Status.EXPIRED,
        timeout=30,
        what=celery_worker_process.output,
    )
    notice = Notification.objects.get(event="request.expired")
    assert notice.recipients == ["alice@acme.example"]
    # The worker delivers it too (after the expiring transaction committed).
    wait_for(
        lambda: Notification.objects.get(pk=notice.pk).status == Notification.Status.SENT,
        timeout=30,
        what=celery_worker_process.output,
    )


@pytest.mark.aws
def test_extensions_cannot_bypass_approvers(acme, alice, sam):
    set_policy(acme.role, approvals_required=1, approvers="staff")
    request = request_create(
        requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=30)
    )
    approvals.request_approve(request_id=request.pk, approver=sam)
    grant = activation.grant_activate(grant_id=Grant.objects.get(request=request).pk)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Read-only needs approval: request access again"):
        grant_extend(grant=grant, by=timedelta(minutes=10), justification="A little more time", actor=alice)


def test_a_request_cannot_be_approved_once_the_requester_lost_eligibility(acme, alice, sam):
    from partners.models import Membership

    set_policy(acme.role, approvals_required=1, approvers="staff")
    request = request_create(
        requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=30)
    )
    Membership.objects.filter(user=alice).update(groups=["sales"])
    page = client_for(sam).post(f"/requests/{request.pk}/approve/", follow=True)
    assert "may no longer request Read-only" in page.content.decode()
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.PENDING
    assert not Grant.objects.filter(request=request).exists()
    client_for(sam).post(f"/requests/{request.pk}/deny/", {"reason": "No longer in the team"})
    request.refresh_from_db()
    assert request.status == AccessRequest.Status.DENIED
