"""Headless Chromium (Debian's, never a downloaded build) driven by Playwright, for the browser tests."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from portal.models import User
from tests.fixtures.domain import sign_in_as

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}


def require_browser() -> None:
    # Missing pieces fail the test with what to do: a browser test that silently skips proves nothing.
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: "
            "`apt-get install -y --no-install-recommends chromium` (never `playwright install`)."
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("The `playwright` Python package is missing: `pip install -e '.[dev]'`.")


@contextmanager
def page_signed_in(user: User, base_url: str, **context_options: Any) -> Iterator[Any]:
    """A browser page whose session is `user`'s, made as the test client makes one (tests.fixtures.domain
    .sign_in_as: for a partner person, signed in through their IdP; for staff, with their second factor), handed
    to the browser as its cookies. The live server must accept its host name."""
    require_browser()
    from playwright.sync_api import sync_playwright

    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
    client = sign_in_as(Client(), user)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**context_options)
            context.add_cookies(
                [
                    {"name": name, "value": morsel.value, "url": base_url}
                    for name, morsel in client.cookies.items()
                    if name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)
                ]
            )
            page = context.new_page()
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def sign_in_through_idp(page: Any, base_url: str, person: Any) -> None:
    """A partner person's sign-in as they do it: their work e-mail at /sign-in/, allauth's confirmation, the IdP's
    own login page (oidc-provider: `person` has email, username and password), back on Porte's home."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/sign-in/")
    page.get_by_label("Work email").fill(person.email)
    page.get_by_role("button", name="Continue", exact=True).click()
    page.get_by_role("button", name=re.compile(r"^Continue to ")).click()
    page.locator("input[name=username]").fill(person.username)
    page.locator("input[name=password]").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base_url}/")
