"""The approval consoles, and their tenancy: every page and endpoint answers 404 to an outsider
(another partner's user; a partner user on staff pages; a non-admin on partner-admin pages).

Personas: Alice (Acme engineer), Pat (Acme partner admin), Mallory (Globex, the outsider), Sam (staff)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from approvals.models import BreakGlassReview, RoleChange
from approvals.services import request_create
from grants.models import AccessRequest, Grant
from grants.services import activation
from partners.models import Partner
from portal.models import AuditEvent
from tests.approvals.conftest import client_for, set_policy
from tests.fixtures.domain import make_member

pytestmark = pytest.mark.django_db

REASON = "Inventory check for TICKET-42"


@pytest.fixture
def pending(acme, alice) -> AccessRequest:  # type: ignore[no-untyped-def]
    set_policy(acme.role, approvals_required=1, approvers="either", break_glass_allowed=True)
    return request_create(
        requester=alice, role=acme.role, justification=REASON, duration=timedelta(minutes=30)
    )


def test_outsiders_get_404_on_request_pages_and_endpoints(pending, mallory, globex):
    globex_admin = make_member(globex.partner, "gina", partner_admin=True)
    for outsider in (mallory, globex_admin):
        client = client_for(outsider)
        assert client.get(f"/requests/{pending.pk}/").status_code == 404
        assert client.post(f"/requests/{pending.pk}/approve/").status_code == 404
        assert client.post(f"/requests/{pending.pk}/deny/", {"reason": "not yours"}).status_code == 404
        assert client.post(f"/api/v1/access-requests/{pending.pk}/approve/").status_code == 404
        deny = client.post(
            f"/api/v1/access-requests/{pending.pk}/deny/",
            {"reason": "not yours"},
            content_type="application/json",
        )
        assert deny.status_code == 404
        assert f"/requests/{pending.pk}/" not in client.get("/partner/approvals/").content.decode()
    pending.refresh_from_db()
    assert pending.status == AccessRequest.Status.PENDING


def test_a_colleague_who_is_not_an_approver_gets_404(pending, acme):
    colleague = make_member(acme.partner, "carol")
    client = client_for(colleague)
    assert client.get(f"/requests/{pending.pk}/").status_code == 404
    assert client.post(f"/requests/{pending.pk}/approve/").status_code == 404
    assert client.post(f"/api/v1/access-requests/{pending.pk}/approve/").status_code == 404


def test_partner_users_get_404_on_every_staff_page(pending, acme, alice, pat):
    change = RoleChange.objects.create(
        role=acme.role, author=pat, before={}, after={}, created_at=pending.created_at
    )
    review = BreakGlassReview.objects.create(request=pending, created_at=pending.created_at)
    for user in (alice, pat):
        client = client_for(user)
        for url in (
            "/staff/approvals/",
            "/staff/grants/",
            "/staff/break-glass/",
            f"/staff/break-glass/{review.pk}/",
            "/staff/changes/",
            f"/staff/changes/{change.pk}/",
            f"/staff/roles/{acme.role.pk}/approval/",
            f"/staff/partners/{acme.partner.slug}/access/",
        ):
            assert client.get(url).status_code == 404, url
        assert client.post(f"/staff/changes/{change.pk}/approve/").status_code == 404
        assert (
            client.post(
                f"/staff/break-glass/{review.pk}/", {"verdict": "justified", "notes": "fine"}
            ).status_code
            == 404
        )
        assert (
            client.post(
                f"/staff/partners/{acme.partner.slug}/access/", {"access_timezone": "UTC"}
            ).status_code
            == 404
        )


def test_partner_admin_pages_are_for_their_own_partner_admins_only(acme, alice, pat, mallory, sam):
    page = client_for(pat).get("/partner/members/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "alice@acme.example" in body and "mallory@globex.example" not in body
    for user in (alice, sam):  # a non-admin member, and staff (no membership)
        assert client_for(user).get("/partner/members/").status_code == 404
    assert client_for(sam).get("/partner/approvals/").status_code == 404


@pytest.mark.aws
def test_staff_queue_shows_pending_requests_and_active_grants_can_be_revoked(pending, acme, sam):
    client = client_for(sam)
    queue = client.get("/staff/approvals/").content.decode()
    assert f"/requests/{pending.pk}/" in queue
    client.post(f"/requests/{pending.pk}/approve/")
    grant = Grant.objects.get(request=pending)
    activation.grant_activate(grant_id=grant.pk)
    active = client.get("/staff/grants/").content.decode()
    assert f"/grants/{grant.pk}/revoke/" in active
    client.post(f"/grants/{grant.pk}/revoke/", {"reason": "Ticket closed"})
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.REVOKING


def test_requester_sees_their_pending_request_and_navigation_links(pending, alice, pat, sam):
    page = client_for(alice).get(f"/requests/{pending.pk}/").content.decode()
    assert "Waiting for approval:" in page and "Approve</button>" not in page
    admin_page = client_for(pat).get(f"/requests/{pending.pk}/").content.decode()
    assert "Approve</button>" in admin_page
    assert 'href="/partner/members/"' in admin_page and 'href="/partner/approvals/"' in admin_page
    staff_page = client_for(sam).get("/staff/approvals/").content.decode()
    for link in ("/staff/approvals/", "/staff/grants/", "/staff/changes/", "/staff/break-glass/"):
        assert f'href="{link}"' in staff_page


def test_staff_edit_the_access_window_networks_and_webhook(acme, sam, settings):
    client = client_for(sam)
    url = f"/staff/partners/{acme.partner.slug}/access/"
    bad = client.post(
        url,
        {
            "access_timezone": "Mars/Olympus",
            "access_days": ["0"],
            "access_start": "08:00",
            "access_end": "18:00",
            "source_ip_allowlist": "198.51.100.0/24 not-a-network",
        },
    )
    assert bad.status_code == 400
    assert "Unknown time zone &#x27;Mars/Olympus&#x27; (use e.g. Europe/Paris)." in bad.content.decode()
    missing_end = client.post(url, {"access_timezone": "UTC", "access_days": ["0"], "access_start": "08:00"})
    assert "Give both the start and the end, or neither." in missing_end.content.decode()
    bad_cidr = client.post(url, {"access_timezone": "UTC", "source_ip_allowlist": "not-a-network"})
    assert "Not a network (CIDR): not-a-network." in bad_cidr.content.decode()
    settings.PRODUCTION = True
    plain = client.post(url, {"access_timezone": "UTC", "webhook_url": "http://hooks.example/T000/secret"})
    assert "The webhook must be an https:// URL." in plain.content.decode()
    settings.PRODUCTION = False

    ok = client.post(
        url,
        {
            "access_timezone": "Europe/Paris",
            "access_days": ["0", "1", "2", "3", "4"],
            "access_start": "08:00",
            "access_end": "18:00",
            "source_ip_allowlist": "198.51.100.0/24\n2001:db8::/32",
            "webhook_url": "https://hooks.example/services/T000/B000/secret-token",
        },
    )
    assert ok.status_code == 302
    partner = Partner.objects.get(pk=acme.partner.pk)
    assert partner.access_days == [0, 1, 2, 3, 4] and partner.access_timezone == "Europe/Paris"
    assert partner.source_ip_allowlist == ["198.51.100.0/24", "2001:db8::/32"]
    assert partner.webhook_url == "https://hooks.example/services/T000/B000/secret-token"
    detail = client.get(f"/staff/partners/{acme.partner.slug}/").content.decode()
    assert "Mon, Tue, Wed, Thu, Fri 08:00-18:00 (Europe/Paris)" in detail
    assert "https://hooks.example/…" in detail and "secret-token" not in detail
    event = AuditEvent.objects.get(action="partner.access_updated")
    assert "secret-token" not in str(event.data)
    # Leaving the webhook field empty keeps it; the checkbox removes it.
    client.post(url, {"access_timezone": "UTC"})
    assert Partner.objects.get(pk=acme.partner.pk).webhook_url.endswith("secret-token")
    client.post(url, {"access_timezone": "UTC", "remove_webhook": "on"})
    assert Partner.objects.get(pk=acme.partner.pk).webhook_url == ""
