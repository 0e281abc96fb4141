"""Porte's sessions: a new session id at sign-in (no fixation), sign-out that really ends the session, the idle and
absolute limits (portal.middleware.session_limits), and CSRF on the state-changing endpoints.

Sign-ins are real (oidc-provider on loopback, through the live server). To put a session "an hour later" the tests
edit the timestamps the middleware keeps in the session (`porte_seen_at`, `porte_signed_in_at`) in the session
store, as time passing would leave them; one test lets the real clock run past a 1-second idle limit instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests
from django.contrib.sessions.models import Session
from django.test import Client

from grants.models import Grant, Role
from portal.models import User
from portal.sessions import SessionStore
from tests.fixtures.domain import build_partner, make_member, sign_in_as
from tests.fixtures.peers import ALICE
from tests.helpers import begin_oidc_sign_in, purge_broker, session_user_id
from tests.peers.oidc_idp import sign_in

IDLE_MESSAGE = "Your session ended after a period of inactivity. Please sign in again."
ENDED_MESSAGE = "Your session ended. Please sign in again."


@pytest.fixture
def browser(live_server, settings, acme_idp) -> Iterator[Callable[[], requests.Session]]:  # type: ignore[no-untyped-def]
    """Fresh `requests` browsers against the live server, with Acme (OIDC) onboarded; closed afterwards (a
    keep-alive connection would hold a live-server thread and its database connection)."""
    settings.PUBLIC_URL = live_server.url
    build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    made: list[requests.Session] = []

    def new() -> requests.Session:
        made.append(requests.Session())
        return made[-1]

    yield new
    for http in made:
        http.close()


def _signed_in(live_server, http: requests.Session) -> str:  # type: ignore[no-untyped-def]
    landed = sign_in(http, begin_oidc_sign_in(http, live_server.url, "acme"), ALICE.username, ALICE.password)
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    return http.cookies["sessionid"]


def _home(live_server, http: requests.Session) -> requests.Response:  # type: ignore[no-untyped-def]
    return http.get(f"{live_server.url}/", allow_redirects=False)


def _is_signed_out(live_server, http: requests.Session) -> bool:  # type: ignore[no-untyped-def]
    home = _home(live_server, http)
    return home.status_code == 302 and home.headers["Location"] == "/sign-in/?next=/"


def _edit_session(key: str, **values: int) -> None:
    store = SessionStore(session_key=key)
    for name, value in values.items():
        store[name] = value
    store.save()


# --- sign-in and sign-out -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_session_id_changes_at_sign_in(live_server, browser):
    """The session that carried the sign-in's state is replaced at sign-in: whoever planted or learnt the earlier
    id (session fixation) holds nothing."""
    http = browser()
    to_idp = begin_oidc_sign_in(http, live_server.url, "acme")
    before = http.cookies["sessionid"]
    assert Session.objects.filter(session_key=before).exists()

    sign_in(http, to_idp, ALICE.username, ALICE.password)

    after = http.cookies["sessionid"]
    assert after != before
    assert session_user_id(http) == str(User.objects.get().pk)
    assert not Session.objects.filter(session_key=before).exists()
    planted = browser()
    planted.cookies.set("sessionid", before)
    assert _is_signed_out(live_server, planted)


@pytest.mark.django_db(transaction=True)
def test_signing_out_ends_the_session(live_server, browser):
    http = browser()
    key = _signed_in(live_server, http)

    # A GET only asks; a POST without the CSRF token is refused; neither signs out.
    assert http.get(f"{live_server.url}/accounts/logout/").status_code == 200
    assert http.post(f"{live_server.url}/accounts/logout/", allow_redirects=False).status_code == 403
    assert _home(live_server, http).status_code == 200

    signed_out = http.post(
        f"{live_server.url}/accounts/logout/",
        data={"csrfmiddlewaretoken": http.cookies["csrftoken"]},
        allow_redirects=False,
    )

    assert signed_out.status_code == 302
    assert not Session.objects.filter(session_key=key).exists()
    assert _is_signed_out(live_server, http)
    # The old session cookie, replayed from elsewhere, is worth nothing.
    stolen = browser()
    stolen.cookies.set("sessionid", key)
    assert _is_signed_out(live_server, stolen)
    assert stolen.get(f"{live_server.url}/api/v1/grants/").status_code == 403


# --- idle and absolute limits ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_idle_session_ends(live_server, browser, settings):
    http = browser()
    key = _signed_in(live_server, http)
    assert settings.SESSION_IDLE_SECONDS == 30 * 60
    _edit_session(key, porte_seen_at=int(time.time()) - 30 * 60 - 5)  # last seen 30 min 5 s ago

    home = _home(live_server, http)

    assert home.status_code == 302 and home.headers["Location"] == "/sign-in/?next=/"
    assert session_user_id(http) is None
    assert IDLE_MESSAGE in http.get(f"{live_server.url}{home.headers['Location']}").text
    assert _is_signed_out(live_server, http)


@pytest.mark.django_db(transaction=True)
def test_a_session_in_use_stays_open_until_the_absolute_limit(live_server, browser, settings):
    """Seen 29 minutes ago (under the 30-minute idle limit): the request goes through and counts as activity.
    Signed in 8 hours and a second ago: the session ends however active it is."""
    http = browser()
    key = _signed_in(live_server, http)
    now = int(time.time())
    _edit_session(key, porte_seen_at=now - 29 * 60)

    assert _home(live_server, http).status_code == 200
    assert SessionStore(session_key=key)["porte_seen_at"] >= now  # activity recorded
    assert session_user_id(http) == str(User.objects.get().pk)

    assert settings.SESSION_ABSOLUTE_SECONDS == 8 * 3600
    _edit_session(key, porte_signed_in_at=int(time.time()) - 8 * 3600 - 1, porte_seen_at=int(time.time()))

    home = _home(live_server, http)

    assert home.status_code == 302 and session_user_id(http) is None
    page = http.get(f"{live_server.url}{home.headers['Location']}").text
    assert ENDED_MESSAGE in page and IDLE_MESSAGE not in page


@pytest.mark.django_db(transaction=True)
def test_the_idle_limit_on_the_real_clock(live_server, browser, settings):
    settings.SESSION_IDLE_SECONDS = 1
    http = browser()
    _signed_in(live_server, http)  # landing on the dashboard was the last activity

    time.sleep(2.2)

    assert _is_signed_out(live_server, http)
    assert session_user_id(http) is None


# --- CSRF --------------------------------------------------------------------------------------------------------


@pytest.fixture
def alice_client(db) -> Iterator[Client]:  # type: ignore[no-untyped-def]
    world = build_partner("acme", provision=False)
    client = Client(enforce_csrf_checks=True)
    sign_in_as(client, make_member(world.partner, "alice"))
    client.get("/")  # the dashboard sets the CSRF cookie, as a browser would see it
    yield client
    purge_broker()  # the accepted requests queue an activation; no worker runs here


def _form(role_id: int, **extra: str) -> dict[str, str]:
    return {
        "role": str(role_id),
        "duration_minutes": "30",
        "justification": "Inventory check for TICKET-42",
        **extra,
    }


def test_the_request_form_refuses_a_post_without_the_csrf_token(alice_client):
    role_id = Role.objects.get().pk
    token = alice_client.cookies["csrftoken"].value

    assert alice_client.post("/requests/new/", _form(role_id)).status_code == 403
    assert (
        alice_client.post("/requests/new/", _form(role_id, csrfmiddlewaretoken="x" * 64)).status_code == 403
    )
    assert not Grant.objects.exists()

    accepted = alice_client.post("/requests/new/", _form(role_id, csrfmiddlewaretoken=token))
    assert accepted.status_code == 302 and accepted["Location"] == f"/grants/{Grant.objects.get().pk}/"


def test_the_api_refuses_a_session_post_without_the_csrf_token(alice_client):
    token = alice_client.cookies["csrftoken"].value
    body = {"role": "readonly", "justification": "Inventory check for TICKET-42", "duration_minutes": 30}

    refused = alice_client.post("/api/v1/access-requests/", body, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["detail"].startswith("CSRF Failed")
    cross_site = alice_client.post(
        "/api/v1/access-requests/",
        body,
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="https://evil.example",
    )
    assert cross_site.status_code == 403 and "Origin checking failed" in cross_site.json()["detail"]
    assert not Grant.objects.exists()

    accepted = alice_client.post(
        "/api/v1/access-requests/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert accepted.status_code == 201 and Grant.objects.get().pk == accepted.json()["id"]
