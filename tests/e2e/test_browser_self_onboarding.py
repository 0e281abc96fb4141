"""A partner onboards itself, in a real browser, from the invitation to its first person signing in.

Staff invite Acme's IT contact (the staff console, Django's test client); the e-mail's link is opened in headless
Chromium, where the contact registers Acme's IdP (a real oidc-provider) by pasting its discovery URL, tests it
with their own account at the IdP, and hands it in. Staff activate Acme; then Alice, a colleague, signs in at
Porte through that IdP for the first time. The contact's clicks and seconds are counted and printed (-s).
"""

from __future__ import annotations

import re
import time

import pytest
from django.core import mail
from django.db import connections
from django.test import Client

from partners import services as partner_services
from partners.models import IdentityProvider, Partner, PartnerInvitation
from portal.models import AuditEvent, User
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_browser, sign_in_through_idp
from tests.fixtures.domain import make_staff, sign_in_as
from tests.fixtures.peers import ALICE

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_partner_onboards_itself_from_the_invitation_to_a_first_sign_in(
    live_server, settings, acme_idp, monkeypatch
):
    require_browser()
    # Staff's console (the test client) and the checks use the ORM between browser steps, in the thread where
    # Playwright's sync API runs its event loop: Django's documented switch for such callers.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect, sync_playwright

    settings.PUBLIC_URL = live_server.url
    sam = make_staff("sam", email="sam@porte.example")
    partner = partner_services.partner_create(
        name="Acme Corp", slug="acme", domains=["acme.example"], sponsor=sam, actor=sam
    )
    staff = sign_in_as(Client(), sam)
    sent = staff.post("/staff/partners/acme/invite/", {"email": "it@acme.example"})
    assert sent.status_code == 302
    (invitation_mail,) = mail.outbox
    assert invitation_mail.to == ["it@acme.example"]
    link = re.search(r"http://\S+/onboard/\S+/", invitation_mail.body)
    assert link, invitation_mail.body

    clicks = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            contact = browser.new_context().new_page()
            contact.set_default_timeout(20_000)

            def click(target) -> None:  # type: ignore[no-untyped-def]
                nonlocal clicks
                clicks += 1
                target.click()

            started = time.perf_counter()
            contact.goto(link.group(0))
            expect(contact.get_by_role("heading", name="Set up Acme Corp's sign-in")).to_be_visible()
            click(contact.get_by_role("button", name="Start"))
            expect(contact).to_have_url(f"{live_server.url}/onboarding/")

            click(contact.get_by_role("link", name="OpenID Connect"))
            contact.get_by_label("Display name").fill("Acme Corp")
            # Pasted as many do: the discovery document's URL.
            contact.get_by_label("Issuer").fill(f"{acme_idp.issuer}/.well-known/openid-configuration")
            contact.get_by_label("Client id").fill("porte-acme")
            contact.get_by_label("Client secret").fill("acme-client-secret")
            click(contact.get_by_role("button", name="Validate and save"))
            expect(contact.get_by_text("Identity provider registered.")).to_be_visible()
            redirect_uri = f"{live_server.url}/accounts/oidc/acme/login/callback/"
            expect(contact.get_by_text(redirect_uri)).to_be_visible()  # what they register in their IdP

            click(contact.get_by_role("button", name="Test sign-in"))
            click(contact.get_by_role("button", name=re.compile(r"^Continue to ")))
            expect(contact).to_have_url(re.compile(rf"^{re.escape(acme_idp.issuer)}/interaction/"))
            contact.locator("input[name=username]").fill(ALICE.username)
            contact.locator("input[name=password]").fill(ALICE.password)
            click(contact.get_by_role("button", name="Sign in"))
            expect(contact).to_have_url(f"{live_server.url}/onboarding/#test")
            expect(contact.get_by_text("The test sign-in passed.")).to_be_visible()
            expect(contact.locator("dd", has_text="alice@acme.example")).to_be_visible()

            click(contact.get_by_role("button", name="Hand in for review"))
            expect(contact.get_by_text("Handed in:")).to_be_visible()
            seconds = time.perf_counter() - started
            # The contact was never signed in to Porte: a test sign-in creates nobody.
            assert not User.objects.filter(is_staff=False).exists()

            # Staff review and activate (this test gives Acme no AWS account: recorded as an exception).
            page = staff.get("/staff/partners/acme/").content.decode()
            assert (
                "handed in for review" in page
                and "✔ Test sign-in passed with the current configuration" in page
            )
            activated = staff.post(
                "/staff/partners/acme/activate/", {"exception_reason": "Account adopted next week"}
            )
            assert activated.status_code == 302

            # Alice, a colleague, signs in for the first time.
            alice = browser.new_context().new_page()
            alice.set_default_timeout(20_000)
            sign_in_through_idp(alice, live_server.url, ALICE)
            expect(alice.get_by_role("heading", name="Acme Corp · AWS access")).to_be_visible()
        finally:
            browser.close()
            connections.close_all()  # the ones opened in Playwright's loop context are that context's own

    print(f"self-service onboarding: the contact's part took {clicks} clicks and {seconds:.1f} s")
    assert Partner.objects.get().status == Partner.Status.ACTIVE
    idp = IdentityProvider.objects.get()
    assert idp.issuer == acme_idp.issuer and idp.is_verified
    invitation = PartnerInvitation.objects.get()
    assert invitation.claimed_at and invitation.submitted_at
    steps = list(
        AuditEvent.objects.filter(object_id=str(invitation.pk), action__startswith="invitation.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert steps == [
        "invitation.created",
        "invitation.opened",
        "invitation.idp_registered",
        "invitation.submitted",
    ]
    test = AuditEvent.objects.get(action="idp.test_sign_in")
    assert test.actor is None and test.data["by_invited_contact"] == "it@acme.example"
    assert User.objects.get(socialaccount__provider="acme").membership.partner == partner
