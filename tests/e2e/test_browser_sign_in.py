"""A person's first visit, in a real browser: headless Chromium (Debian's) driven by Playwright finds Acme's IdP
from her email, goes through allauth's confirmation page and the IdP's own login page (oidc-provider), lands on
Porte's dashboard, and requests access through the form.

What this adds to tests/test_end_to_end.py (which drives the same flow with `requests`): the pages work in a
browser as served — cookies across the three origins' redirects, CSRF tokens in the forms, the CSP letting the
sign-in form post to and through the IdP, and the dashboard form's names matching the view.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from django.db import connection

from grants.models import Grant
from grants.services import activation
from portal.models import User
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.fixtures.domain import build_partner
from tests.fixtures.peers import ALICE
from tests.helpers import purge_broker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _activate_like_a_worker(grant_id: int) -> str:
    # Not in this thread: Playwright's sync API runs an event loop here, where Django refuses blocking ORM calls.
    status: list[str] = []

    def run() -> None:
        try:
            status.append(activation.grant_activate(grant_id=grant_id).status)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    purge_broker()  # the activation the request queued on commit: no worker runs in this test
    return status[0] if status else "activation did not finish"


def test_sign_in_and_request_access_in_a_browser(live_server, acme_idp, local_aws, tmp_path: Path):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)

            # Home-realm discovery: the work email leads to Acme's IdP, via allauth's confirmation page.
            page.goto(f"{live_server.url}/sign-in/")
            page.get_by_label("Work email").fill(ALICE.email)
            page.get_by_role("button", name="Continue", exact=True).click()
            expect(page).to_have_url(f"{live_server.url}/accounts/oidc/acme/login/")
            page.get_by_role("button", name=re.compile(r"^Continue to ")).click()

            # Acme's own login page, on the IdP's origin.
            expect(page).to_have_url(re.compile(rf"^{re.escape(acme_idp.issuer)}/interaction/"))
            expect(page.get_by_text("Acme Corp sign-in").first).to_be_visible()
            page.locator("input[name=username]").fill(ALICE.username)
            page.locator("input[name=password]").fill(ALICE.password)
            page.get_by_role("button", name="Sign in").click()

            # Back on Porte, signed in as Alice of Acme.
            expect(page).to_have_url(f"{live_server.url}/")
            expect(page.get_by_role("heading", name="Acme Corp · AWS access")).to_be_visible()
            expect(page.get_by_role("heading", name="Request access")).to_be_visible()
            expect(page.locator("header .who")).to_have_text("Alice Martin · Acme Corp")

            # Request access through the dashboard form.
            page.get_by_label("Role").select_option(value=str(world.role.pk))
            page.get_by_label("Duration (minutes)").fill("30")
            page.get_by_label("Justification").fill("Inventory check for TICKET-42")
            page.get_by_role("button", name="Request access").click()

            expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/grants/\d+/$"))
            expect(page.get_by_role("heading", name=re.compile(r"^Read-only"))).to_be_visible()
            expect(page.get_by_text("Access to Read-only approved; activating now.")).to_be_visible()
            expect(page.get_by_text("Inventory check for TICKET-42")).to_be_visible()
            grant_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

            # The worker's part (covered with a real worker by tests/test_end_to_end.py), done by the activation
            # service in a thread of its own here: the page refreshes itself while the grant activates, then
            # offers the console and CLI.
            assert _activate_like_a_worker(grant_id) == Grant.Status.ACTIVE
            expect(page.get_by_role("button", name="Open AWS console")).to_be_visible(timeout=10_000)
            expect(page.get_by_role("button", name="CLI credentials")).to_be_visible()
            page.screenshot(path=str(tmp_path / "grant.png"), full_page=True)
        finally:
            browser.close()

    assert (tmp_path / "grant.png").stat().st_size > 0
    alice = User.objects.get(socialaccount__provider="acme", socialaccount__uid=ALICE.sub)
    assert alice.membership.partner == world.partner and alice.email == ALICE.email
    grant = Grant.objects.get(pk=grant_id)
    assert grant.user == alice and grant.role == world.role
    assert grant.request.justification == "Inventory check for TICKET-42"
    assert (grant.ends_at - grant.starts_at).total_seconds() == 30 * 60
