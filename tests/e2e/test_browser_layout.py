"""Every page a partner person and a staff member can reach, on a phone, in a real browser.

Headless Chromium (Debian's) at 390 x 844 CSS pixels crawls Porte as each person: from their home page, every
same-origin link, breadth first. Each page must:
- fit the screen: the document is no wider than the viewport (a wide table scrolls inside itself);
- pass axe-core's automated WCAG 2.1 A/AA checks (labels, headings, names, contrast, landmarks...);
- hold no inline script or style attribute in its HTML (the CSP would refuse them).

The people and their objects are the URL matrix's (tests/fixtures/everyone.py): a member with a grant and its
events, a partner admin, staff with a second factor, pending requests, a review campaign, an alert. Their sessions
are made as the matrix makes them and handed to the browser as its cookie.

Not crawled: Django's admin (the library's own pages), downloads (CSV, JSON, PDF), the API (JSON), and signing out.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from partners import invitations
from partners import services as partner_services
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, PHONE, page_signed_in, require_browser
from tests.fixtures.domain import make_staff
from tests.helpers import INLINE_SCRIPT_OR_STYLE

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parents[1] / "peers" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SKIPPED_PREFIXES = ("/admin/", "/api/", "/accounts/logout/", "/static/")
SKIPPED_SUFFIXES = (".csv", ".json", ".pdf")
MAX_PAGES = 200  # per person: a crawl that runs away is a failure of its own


def _crawl(page: Any, base: str, start: str) -> tuple[list[str], list[str]]:
    """(pages visited, problems) crawling from `start`."""
    seen, queue, visited, problems = {start}, deque([start]), [], []
    while queue:
        path = queue.popleft()
        response = page.goto(base + path)
        assert response is not None, path
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        if response.status >= 500:
            problems.append(f"{path}: {response.status}")
            continue
        visited.append(path)
        if inline := INLINE_SCRIPT_OR_STYLE.search(response.text()):
            problems.append(f"{path}: {inline.group(0).strip()!r} in the HTML (the CSP refuses it)")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide = page.evaluate(_WIDEST)
            problems.append(f"{path}: {width} px wide at {PHONE['width']} px (widest: {wide})")
        page.add_script_tag(path=str(AXE))
        result = page.evaluate(
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        )
        for violation in result["violations"]:
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:3]]
            problems.append(f"{path}: {violation['id']} ({violation['help']}) at {targets}")
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
            url = urlsplit(urljoin(base + path, href))
            if f"{url.scheme}://{url.netloc}" != base:
                continue
            target = url.path + (f"?{url.query}" if url.query else "")
            if target in seen or url.path.startswith(SKIPPED_PREFIXES) or url.path.endswith(SKIPPED_SUFFIXES):
                continue
            seen.add(target)
            queue.append(target)
        assert len(visited) <= MAX_PAGES, f"more than {MAX_PAGES} pages from {start}: {visited[-5:]}"
    return visited, problems


# The elements wider than the screen, deepest first: what to fix when a page overflows.
_WIDEST = """
() => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(-3).map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : '')).join(', ')
"""


@pytest.mark.parametrize("who", ["member", "partner_admin", "staff"])
def test_every_page_fits_a_phone_and_passes_axe(who, people, live_server):
    if not AXE.exists():
        pytest.fail(f"axe-core is not installed at {AXE}: `make browser` (npm ci in tests/peers/axe).")
    user = people[who].user
    assert user is not None
    start = "/staff/" if who == "staff" else "/"
    # axe-core is injected as a script: the test lets it past the pages' CSP (other tests check the CSP).
    with page_signed_in(user, live_server.url, viewport=PHONE, bypass_csp=True) as page:
        visited, problems = _crawl(page, live_server.url, start)

    assert not problems, json.dumps(problems, indent=1)
    # The crawl went through the person's pages, not a sign-in page.
    assert start in visited and not any(p.startswith("/sign-in/") for p in visited)
    expected = {"member": "/activity/", "partner_admin": "/partner/members/", "staff": "/staff/partners/"}[
        who
    ]
    assert expected in visited, visited
    print(f"{who}: {len(visited)} pages fit {PHONE['width']} px and pass axe-core")


def test_a_destructive_action_asks_first(people, live_server):
    """Revoking a grant from its page asks the person first: dismissed, nothing happens; accepted, it is done."""
    person = people["approver"]
    assert person.user is not None
    url = f"{live_server.url}/grants/{person.args['grant_id']}/"
    asked: list[str] = []

    with page_signed_in(person.user, live_server.url) as page:
        page.goto(url)
        expect_status = page.locator("h1 .status")
        assert expect_status.inner_text() == "Active"
        page.locator("form[action$='/revoke/'] input[name=reason]").fill("Done with it")

        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
        page.get_by_role("button", name="Revoke now").click()
        page.goto(url)
        assert expect_status.inner_text() == "Active"

        page.locator("form[action$='/revoke/'] input[name=reason]").fill("Done with it")
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.get_by_role("button", name="Revoke now").click()
        page.wait_for_url(url)
        assert expect_status.inner_text() in ("Revoking", "Revoked")

    assert len(asked) == 2 and asked[0].startswith("Revoke this grant now?")


def test_the_onboarding_pages_fit_a_phone_and_pass_axe(live_server):
    """The invited IT contact's pages (no account: the invitation opened in this browser)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    # The invitation is made before the browser's loop starts; nothing here uses the ORM inside it.
    partner = partner_services.partner_create(name="Wayne", slug="wayne", domains=["wayne.example"])
    _, token = invitations.invitation_create(
        partner=partner, email="it@wayne.example", actor=make_staff("sam")
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=PHONE, bypass_csp=True).new_page()
            page.set_default_timeout(20_000)
            page.goto(f"{live_server.url}/onboard/{token}/")
            page.get_by_role("button", name="Start").click()
            page.wait_for_url(f"{live_server.url}/onboarding/")
            visited, problems = _crawl(page, live_server.url, "/onboarding/")
        finally:
            browser.close()

    assert not problems, json.dumps(problems, indent=1)
    assert {"/onboarding/", "/onboarding/idp/oidc/", "/onboarding/idp/saml/"} <= set(visited), visited
