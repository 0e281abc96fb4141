"""A sign-in's cost in database round trips stays where it was measured (bench/sign_in_throughput.py): each hop of
a repeat OIDC sign-in through oidc-provider, counted as the database sees them (BEGIN and COMMIT included).

Porte's hops go through Django's test Client (this thread's connection, so every statement is counted); the
browser's hops to the IdP go through `requests`, as a browser's would.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.fixtures.domain import build_partner
from tests.fixtures.peers import ALICE
from tests.peers.oidc_idp import sign_in

# Measured: the login page reads the IdP; the login POST reads it and stores allauth's state in a new session
# (its insert, and allauth's re-read; the end of the request has nothing new to write); the callback 16 (the
# session, the IdP, allauth's consumed state and re-read, its account and user lookups, the membership read
# locked and updated with its audit row in one transaction, allauth's user check, last_login, the session
# re-keyed with what it holds, the session index); the dashboard 7, with nothing to write.
MOST = {"login page": 1, "login POST": 3, "callback": 16, "dashboard": 7}


def _round_trips(client: Client) -> dict[str, int]:
    counts: dict[str, int] = {}

    def hop(name: str, call, status: int):  # type: ignore[no-untyped-def]
        with CaptureQueriesContext(connection) as queries:
            response = call()
        assert response.status_code == status, (name, response.status_code)
        counts[name] = len(queries.captured_queries)
        return response

    login = "/accounts/oidc/acme/login/"
    hop("login page", lambda: client.get(login), 200)
    to_idp = hop(
        "login POST",
        lambda: client.post(login, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}),
        302,
    )
    with requests.Session() as browser:
        back = sign_in(browser, to_idp["Location"], ALICE.username, ALICE.password, follow_callback=False)
    callback = urlsplit(back.headers["Location"])
    done = hop("callback", lambda: client.get(f"{callback.path}?{callback.query}"), 302)
    assert done["Location"] == "/"
    hop("dashboard", lambda: client.get("/"), 200)
    return counts


@pytest.mark.django_db(transaction=True)
def test_a_repeat_sign_in_costs_what_was_measured(live_server, acme_idp, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PUBLIC_URL = live_server.url
    build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    host = urlsplit(live_server.url).netloc  # the redirect_uri the IdP knows is on the live server's address
    _round_trips(Client(HTTP_HOST=host))  # the first sign-in creates Alice
    repeat = _round_trips(Client(HTTP_HOST=host))
    assert all(repeat[hop] <= most for hop, most in MOST.items()), repeat
