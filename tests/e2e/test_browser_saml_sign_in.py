"""A SAML partner's person signs in with a real browser: headless Chromium (Debian's) driven by Playwright finds
the partner's SAML IdP (SimpleSAMLphp) from her email, logs in on the IdP's own page, and the IdP's auto-posting
form brings her back to Porte's dashboard.

What this adds to tests/partners/test_saml_sign_in.py (which drives SAML with `requests`): the HTTP-POST binding
as a browser does it — the IdP's page posts the SAMLResponse across origins with JavaScript, Porte's SameSite=Lax
session cookie is not sent on that cross-site POST, and allauth's hand-over from the ACS to `acs/finish/` must
still find the sign-in this browser started.
"""

from __future__ import annotations

import re

import pytest
from allauth.socialaccount.models import SocialAccount

from portal.models import User
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.fixtures.domain import build_saml_partner, saml_sp
from tests.helpers import refusals
from tests.peers.saml_idp import SamlIdp, SamlUser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ALICE = SamlUser(
    "alice",
    "alice-pw",
    uid="acme-0001",
    email="alice@acme.example",
    name="Alice Martin",
    groups=["engineers", "aws-admins"],
)


def test_saml_sign_in_in_a_browser_lands_on_the_dashboard(live_server, settings):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    settings.PUBLIC_URL = live_server.url
    with SamlIdp([ALICE], [saml_sp(live_server.url, "acme")], title="Acme Corp SAML sign-in") as idp:
        world = build_saml_partner("acme", idp)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.set_default_timeout(15_000)

                page.goto(f"{live_server.url}/sign-in/")
                page.get_by_label("Work email").fill(ALICE.email)
                page.get_by_role("button", name="Continue", exact=True).click()
                expect(page).to_have_url(f"{live_server.url}/accounts/saml/acme/login/")
                page.get_by_role("button", name="Continue to Acme SAML sign-in").click()

                # SimpleSAMLphp's own login page, on the IdP's origin.
                expect(page).to_have_url(
                    re.compile(rf"^{re.escape(idp.base_url)}module\.php/core/loginuserpass")
                )
                page.locator("input[name=username]").fill(ALICE.username)
                page.locator("input[name=password]").fill(ALICE.password)
                page.locator(
                    "form:has(input[name=password]) button[type=submit], "
                    "form:has(input[name=password]) input[type=submit]"
                ).first.click()

                # The IdP's page posts the SAMLResponse to Porte's ACS by itself; Porte lands her home.
                expect(page).to_have_url(f"{live_server.url}/", timeout=20_000)
                expect(page.get_by_role("heading", name="Acme Corp · AWS access")).to_be_visible()
                expect(page.get_by_role("heading", name="Request access")).to_be_visible()
                expect(page.locator("header .who")).to_have_text("Alice Martin · Acme Corp")
                cookies = {c["name"]: c for c in page.context.cookies(live_server.url)}
            finally:
                browser.close()

    assert cookies["sessionid"]["httpOnly"] and cookies["sessionid"]["sameSite"] == "Lax"
    account = SocialAccount.objects.get()
    assert (account.provider, account.uid) == ("acme", ALICE.uid)
    alice = User.objects.get()
    assert alice == account.user and alice.email == ALICE.email
    assert alice.membership.partner == world.partner
    assert alice.membership.groups == ["aws-admins", "engineers"]
    assert refusals() == []
