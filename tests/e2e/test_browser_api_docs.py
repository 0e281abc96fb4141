"""The API docs in a real browser, under the CSP every page gets: Swagger UI renders the schema's operations, and
the browser reports no refused script, style or connection."""

from __future__ import annotations

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_browser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_renders_the_api_within_the_csp(live_server):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    refused: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            page.on(
                "console",
                lambda message: (
                    refused.append(message.text) if "Content Security Policy" in message.text else None
                ),
            )
            page.goto(f"{live_server.url}/api/docs/")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Porte API")
            # The operations, read from /api/schema/: the grant credentials call among them.
            expect(
                page.locator(".opblock-summary-path", has_text="/api/v1/grants/{grant_id}/credentials/")
            ).to_be_visible()
        finally:
            browser.close()

    assert refused == []
