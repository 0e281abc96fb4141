from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; fail the test with `what` if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def csrf_headers(http: requests.Session) -> dict[str, str]:
    return {"X-CSRFToken": http.cookies.get("csrftoken", "")}


def begin_oidc_sign_in(http: requests.Session, base_url: str, provider_id: str) -> requests.Response:
    """GET allauth's confirmation page (sets the CSRF cookie), then POST it: returns the redirect to the IdP."""
    login_url = f"{base_url}/accounts/oidc/{provider_id}/login/"
    http.get(login_url).raise_for_status()
    return http.post(login_url, data={"csrfmiddlewaretoken": http.cookies["csrftoken"]}, allow_redirects=False)
