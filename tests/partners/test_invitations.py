"""Self-service onboarding invitations: what the link is, who it lets in, for how long, and what it refuses.

The whole journey in a browser (with a real IdP) is tests/e2e/test_browser_self_onboarding.py; the URL matrix
(tests/portal/test_url_matrix.py) asks every URL as a contact holding an opened invitation."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from django.core import mail
from django.test import Client
from django.utils import timezone

from partners import invitations
from partners import services as partner_services
from partners.models import IdentityProvider, Partner, PartnerInvitation
from portal.models import AuditEvent, Notification, User
from tests.fixtures.domain import make_staff, saml_sp, sign_in_as
from tests.helpers import csrf_headers
from tests.peers.oidc_idp import free_port
from tests.peers.saml_idp import SamlIdp, SamlUser
from tests.peers.saml_idp import sign_in as saml_sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner() -> Partner:
    return partner_services.partner_create(name="Acme Corp", slug="acme", domains=["acme.example"])


@pytest.fixture
def sam():  # type: ignore[no-untyped-def]
    return make_staff("sam", email="sam@porte.example")


def _invite(sam, partner: Partner, email: str = "it@acme.example") -> str:  # type: ignore[no-untyped-def]
    _, token = invitations.invitation_create(partner=partner, email=email, actor=sam)
    return token


def test_staff_invite_by_e_mail_and_only_the_links_digest_is_kept(sam, partner: Partner) -> None:  # type: ignore[no-untyped-def]
    staff = sign_in_as(Client(), sam)
    first = staff.post("/staff/partners/acme/invite/", {"email": "old@acme.example"})
    second = staff.post("/staff/partners/acme/invite/", {"email": "it@acme.example"})
    assert first.status_code == second.status_code == 302

    assert [m.to for m in mail.outbox] == [["old@acme.example"], ["it@acme.example"]]
    token = re.search(r"/onboard/(\S+)/", mail.outbox[1].body).group(1)  # type: ignore[union-attr]
    assert len(token) >= 40
    current = PartnerInvitation.objects.get(email="it@acme.example")
    assert token not in current.token_digest and current.expires_at - current.created_at == timedelta(days=7)
    # The new invitation withdrew the first one; neither the token nor the link is in the audit or the notices.
    assert PartnerInvitation.objects.get(email="old@acme.example").revoked_at is not None
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="invitation.").order_by("id")] == [
        "invitation.created",
        "invitation.withdrawn",
        "invitation.created",
    ]
    assert not AuditEvent.objects.filter(data__icontains=token).exists()
    assert not Notification.objects.filter(body__icontains=token).exists()
    page = staff.get("/staff/partners/acme/").content.decode()
    assert "it@acme.example" in page and "withdrawn" in page and token not in page


def test_a_mail_server_that_refuses_is_said_to_staff_and_recorded(sam, partner: Partner, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = (
        "127.0.0.1",
        free_port(),
        2,
    )  # nothing listens
    staff = sign_in_as(Client(), sam)

    response = staff.post("/staff/partners/acme/invite/", {"email": "it@acme.example"}, follow=True)

    assert response.status_code == 200
    assert "could not be e-mailed (ConnectionRefusedError" in response.content.decode()
    failed = AuditEvent.objects.get(action="invitation.mail_failed")
    assert failed.data["email"] == "it@acme.example" and "ConnectionRefusedError" in failed.data["problem"]


def test_a_bad_address_or_a_partner_past_onboarding_is_refused_with_the_reason(sam, partner: Partner) -> None:  # type: ignore[no-untyped-def]
    staff = sign_in_as(Client(), sam)
    bad = staff.post("/staff/partners/acme/invite/", {"email": "not an address"})
    assert bad.status_code == 400 and "Enter a valid email address." in bad.content.decode()
    partner_services.partner_activate(partner=partner, exception_reason="pilot")
    active = staff.post("/staff/partners/acme/invite/", {"email": "it@acme.example"})
    assert active.status_code == 400 and "only a partner still onboarding" in active.content.decode()
    assert not PartnerInvitation.objects.exists()


def test_the_link_works_once_in_one_browser_and_a_look_spends_nothing(sam, partner: Partner) -> None:  # type: ignore[no-untyped-def]
    token = _invite(sam, partner)
    scanner, contact, other = Client(), Client(), Client()

    look = scanner.get(f"/onboard/{token}/")  # a mail scanner following the link
    assert look.status_code == 200 and "Set up Acme Corp" in look.content.decode()
    assert PartnerInvitation.objects.get().claimed_at is None
    assert scanner.get("/onboarding/").status_code == 404  # looking opened nothing

    opened = contact.post(f"/onboard/{token}/")
    assert opened.status_code == 302 and opened["Location"] == "/onboarding/"
    assert contact.get("/onboarding/").status_code == 200

    again = other.post(f"/onboard/{token}/")
    assert again.status_code == 410 and "opened already" in again.content.decode()
    assert other.get("/onboarding/").status_code == 404
    for wrong in ("not-a-token", token[:-1], token + "x"):
        refused = other.post(f"/onboard/{wrong}/")
        assert refused.status_code == 410 and "not a Porte invitation" in refused.content.decode()


@pytest.mark.parametrize("how", ["withdrawn", "expired", "partner activated"])
def test_a_closed_invitation_opens_nothing_and_ends_the_contacts_access(
    sam, partner: Partner, how: str
) -> None:  # type: ignore[no-untyped-def]
    token = _invite(sam, partner)
    contact = Client()
    contact.post(f"/onboard/{token}/")
    assert contact.get("/onboarding/").status_code == 200
    unopened = _invite(sam, partner, "second@acme.example")  # withdraws the first one
    if how == "withdrawn":
        closed = token
    else:
        closed = unopened
        PartnerInvitation.objects.filter(revoked_at__isnull=True).update(claimed_at=None)
        contact = Client()
        contact.post(f"/onboard/{unopened}/")
        assert contact.get("/onboarding/").status_code == 200
        if how == "expired":
            PartnerInvitation.objects.filter(email="second@acme.example").update(expires_at=timezone.now())
        else:
            partner_services.partner_activate(partner=partner, exception_reason="pilot")

    assert contact.get("/onboarding/").status_code == 404
    assert contact.post("/onboarding/test/").status_code == 404
    refused = Client().post(f"/onboard/{closed}/")
    assert refused.status_code == 410


def test_hand_in_needs_a_passing_test_with_the_current_mapping(sam, partner: Partner) -> None:  # type: ignore[no-untyped-def]
    token = _invite(sam, partner)
    contact = Client()
    contact.post(f"/onboard/{token}/")
    invitation = PartnerInvitation.objects.get()
    idp = IdentityProvider.objects.create(
        partner=partner, provider_id="acme", protocol="oidc", issuer="https://idp.acme.example", client_id="p"
    )

    early = contact.post("/onboarding/submit/")
    assert early.status_code == 400 and "test sign-in" in early.content.decode()
    partner_services.identity_provider_verified(
        identity_provider=idp, actor=None, claims={}, contact=invitation.email
    )
    saved = contact.post(
        "/onboarding/mapping/",
        {"email_claim": "mail", "groups_claim": "roles", "subject_claim": "", "name_claim": ""},
    )
    assert saved.status_code == 302
    idp.refresh_from_db()
    assert idp.claim_mapping == {"email": "mail", "groups": "roles"} and not idp.is_verified
    assert contact.post("/onboarding/submit/").status_code == 400  # the new mapping is untested

    partner_services.identity_provider_verified(
        identity_provider=idp, actor=None, claims={}, contact=invitation.email
    )
    handed_in = contact.post("/onboarding/submit/")
    assert handed_in.status_code == 302
    invitation.refresh_from_db()
    assert invitation.submitted_at is not None
    notice = Notification.objects.get(event="invitation.submitted")
    assert notice.recipients == ["sam@porte.example"]  # every staff member (Acme has no sponsor)
    assert [
        e.action
        for e in AuditEvent.objects.filter(
            object_id=str(invitation.pk), action__startswith="invitation."
        ).order_by("id")
    ][-2:] == [
        "invitation.mapping_saved",
        "invitation.submitted",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_contact_onboards_a_saml_idp_by_its_metadata_url(live_server, settings, sam) -> None:  # type: ignore[no-untyped-def]
    """The SAML road, against SimpleSAMLphp: the contact's browser (`requests`) opens the link, registers the IdP
    by its metadata URL, tests it with their own account and hands it in."""
    settings.PUBLIC_URL = live_server.url
    partner = partner_services.partner_create(name="Acme Corp", slug="acme", domains=["acme.example"])
    token = _invite(sam, partner)
    contact = SamlUser("it", "it-saml-pw", "acme-0100", "it@acme.example", "Ida Tan", ["it-admins"])
    with SamlIdp([contact], [saml_sp(live_server.url, "acme")]) as idp:
        http = requests.Session()
        http.get(f"{live_server.url}/onboard/{token}/").raise_for_status()
        opened = http.post(f"{live_server.url}/onboard/{token}/", headers=csrf_headers(http))
        assert opened.url == f"{live_server.url}/onboarding/"
        registered = http.post(
            f"{live_server.url}/onboarding/idp/saml/",
            data={"display_name": "Acme SAML", "metadata_url": idp.metadata_url},
            headers=csrf_headers(http),
        )
        assert registered.url == f"{live_server.url}/onboarding/"
        assert (
            f"<code>{live_server.url}/accounts/saml/acme/acs/</code>" in registered.text
        )  # what to register

        start = http.post(f"{live_server.url}/onboarding/test/", headers=csrf_headers(http))
        login_path = re.search(r'<form method="post" action="([^"]+)">.*?Continue to', start.text, re.DOTALL)
        assert login_path and login_path.group(1) == "/accounts/saml/acme/login/"
        to_idp = http.post(
            f"{live_server.url}{login_path.group(1)}",
            data={"csrfmiddlewaretoken": http.cookies["csrftoken"]},
            allow_redirects=False,
        )
        result = saml_sign_in(http, to_idp, contact.username, contact.password)

    assert result.status_code == 200 and result.url.startswith(f"{live_server.url}/onboarding/")
    assert "The test sign-in passed." in result.text and "<dd>it@acme.example</dd>" in result.text
    assert IdentityProvider.objects.get(partner=partner).is_verified
    assert not User.objects.filter(is_staff=False).exists()  # the test signed nobody in
    handed_in = http.post(f"{live_server.url}/onboarding/submit/", headers=csrf_headers(http))
    assert handed_in.status_code == 200 and "Handed in" in handed_in.text
    assert PartnerInvitation.objects.get(partner=partner).submitted_at is not None
