"""Staff accounts: a second factor before any staff page, the TOTP step at every password sign-in, a lockout after
repeated wrong passwords, and staff pages that do not exist for partner users.

Signs in through allauth's real login and two-factor views (Django's test client; no IdP is involved). The
failed-login counters live in the shared cache, cleared around each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from allauth.mfa.models import Authenticator
from django.core.cache import cache
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from grants.models import Role
from portal.models import User
from tests.fixtures.domain import (
    STAFF_TOTP_SECRET,
    build_partner,
    make_member,
    make_staff,
    sign_in_as,
    totp_code,
)
from tests.helpers import fresh_totp_code

pytestmark = pytest.mark.django_db

ACTIVATE_TOTP = "/accounts/2fa/totp/activate/"
PASSWORD = "sam-Staff-pw-1"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def acme(db):  # type: ignore[no-untyped-def]
    return build_partner("acme", provision=False)


def _staff_urls(role: Role) -> list[str]:
    """Every page under /staff/, found from the URL configuration (so a new staff page is covered too), plus the
    Django admin."""
    values = {
        "slug": "acme",
        "provider_id": "acme",
        "protocol": "oidc",
        "role_id": role.pk,
        # Approvals pages: a break-glass review, a role change and its decision.
        "review_id": 1,
        "change_id": 1,
        "decision": "approve",
        # Activity: a quarantined trail object.
        "object_id": 1,
        # Alerts: acknowledging one.
        "alert_id": 1,
    }
    # Access reviews' pages (the ids need not exist: the checks here answer before any lookup).
    values.update({"campaign_id": 1, "item_id": 1, "fmt": "csv", "workload_id": 1})

    def walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:  # type: ignore[type-arg]
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern

    urls = []
    for route, pattern in walk(get_resolver().url_patterns):
        if route.startswith("staff/"):
            urls.append(reverse(pattern.name, kwargs={k: values[k] for k in pattern.pattern.converters}))
    assert len(urls) >= 14 and "/staff/partners/acme/suspend/" in urls and "/staff/partners/" in urls
    return [*urls, "/admin/", "/admin/partners/partner/"]


def _is_signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _password_step(client: Client, username: str = "sam", password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post("/accounts/login/", {"login": username, "password": password})


# --- a second factor before anything else ---------------------------------------------------------------------------


# Transactional: allauth announces a new authenticator on commit, and that is when the session counts the factor.
@pytest.mark.django_db(transaction=True)
def test_staff_without_totp_are_sent_to_set_it_up_from_every_staff_page(acme):
    make_staff("newbie", totp=False)
    client = Client()
    signed_in = _password_step(client, username="newbie", password="newbie-Staff-pw-1")
    assert signed_in.status_code == 302 and _is_signed_in(client)  # no second factor to ask for yet

    for url in _staff_urls(acme.role):
        for method in (client.get, client.post):
            response = method(url)
            assert (response.status_code, response.get("Location")) == (302, ACTIVATE_TOTP), (method, url)
    assert client.get("/accounts/logout/").status_code == 200  # signing out stays possible

    # Setting it up is reachable: allauth asks for the password again before a factor is added, then the code.
    to_reauthenticate = client.get(ACTIVATE_TOTP)
    assert to_reauthenticate.status_code == 302
    assert (
        to_reauthenticate["Location"]
        == "/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F"
    )
    reauthenticated = client.post(to_reauthenticate["Location"], {"password": "newbie-Staff-pw-1"})
    assert reauthenticated.status_code == 302 and reauthenticated["Location"] == ACTIVATE_TOTP
    assert client.get(ACTIVATE_TOTP).status_code == 200
    secret = client.session["mfa.totp.secret"]
    activated = client.post(ACTIVATE_TOTP, {"code": fresh_totp_code(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user__username="newbie", type=Authenticator.Type.TOTP).exists()
    assert client.get("/staff/partners/").status_code == 200


def test_staff_with_totp_reach_the_staff_pages(acme):
    client = Client()
    sign_in_as(client, make_staff("sam"))
    assert client.get("/staff/partners/").status_code == 200
    assert client.get("/staff/partners/acme/").status_code == 200


def test_staff_pages_do_not_exist_for_a_partner_user(acme):
    client = Client()
    sign_in_as(client, make_member(acme.partner, "alice"))

    # The admin included: the gate answers for it like for every staff page.
    for url in [*_staff_urls(acme.role), "/admin/", "/admin/login/"]:
        for method in (client.get, client.post):
            assert method(url).status_code == 404, (method, url)


def test_an_anonymous_visitor_is_sent_to_sign_in(acme):
    response = Client().get("/staff/partners/")
    assert response.status_code == 302 and response["Location"] == "/sign-in/?next=/staff/partners/"


# --- password + TOTP ------------------------------------------------------------------------------------------------


def test_a_staff_password_sign_in_stops_at_the_totp_step():
    make_staff("sam")
    client = Client()

    response = _password_step(client)

    assert response.status_code == 302 and response["Location"] == "/accounts/2fa/authenticate/"
    assert not _is_signed_in(client)
    staff_page = client.get("/staff/partners/")
    assert staff_page.status_code == 302 and staff_page["Location"] == "/sign-in/?next=/staff/partners/"


def test_a_wrong_totp_code_does_not_sign_in_and_the_right_one_does():
    sam = make_staff("sam")
    sam.first_name, sam.last_name = "Sam", "Okafor"
    sam.save(update_fields=["first_name", "last_name"])
    client = Client()
    _password_step(client)

    for wrong in ("000000" if totp_code() != "000000" else "111111", "12345", "abcdef", ""):
        response = client.post("/accounts/2fa/authenticate/", {"code": wrong})
        assert response.status_code == 400 and not _is_signed_in(client)  # the form again, with its error
    assert (
        "Incorrect code." in response.content.decode()
        or "This field is required." in response.content.decode()
    )
    assert client.get("/staff/partners/").status_code == 302
    sam.refresh_from_db()
    assert sam.last_login is None
    before = client.session.session_key
    right = fresh_totp_code(STAFF_TOTP_SECRET)

    response = client.post("/accounts/2fa/authenticate/", {"code": right})

    assert response.status_code == 302 and _is_signed_in(client)
    # Staff land on their queues, told who they are signed in as by name (never the internal username).
    assert response["Location"] == "/staff/"
    landing = client.get("/staff/").content.decode()
    assert "Signed in as Sam Okafor." in landing and "as sam." not in landing
    assert client.session["_auth_user_id"] == str(sam.pk)
    assert client.session.session_key != before  # a new session at sign-in
    assert client.get("/staff/partners/").status_code == 200

    # A code works once: a second sign-in in the same 30 s window cannot reuse it.
    again = Client()
    _password_step(again)
    assert again.post("/accounts/2fa/authenticate/", {"code": right}).status_code == 400
    assert not _is_signed_in(again)


def test_a_wrong_password_never_reaches_the_totp_step():
    make_staff("sam")
    client = Client()
    response = _password_step(client, password="not-the-password")
    assert response.status_code == 400 and "The username and/or password you specified are not correct." in (
        response.content.decode()
    )
    assert client.get("/accounts/2fa/authenticate/").status_code == 302
    assert not _is_signed_in(client)


# --- lockout --------------------------------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one():
    """allauth's `login_failed` limit, 5 per 15 minutes per account (PORTE_LOGIN_FAILED_LIMIT): the 6th attempt is
    refused with the right password, from a fresh browser too; another staff member is not locked out."""
    make_staff("sam")
    make_staff("sally")

    for attempt in range(5):
        response = _password_step(Client(), password=f"guess-{attempt}")
        assert response.status_code == 400
        assert "The username and/or password you specified are not correct." in response.content.decode()

    client = Client()
    locked = _password_step(client)

    assert locked.status_code == 400
    assert "Too many failed login attempts. Try again later." in locked.content.decode()
    assert not _is_signed_in(client)
    assert client.get("/accounts/2fa/authenticate/").status_code == 302  # not even at the second step
    # Case does not get around it (usernames are matched case-insensitively).
    assert "Too many failed login attempts" in _password_step(Client(), username="SAM").content.decode()

    other = Client()
    assert _password_step(other, username="sally", password="sally-Staff-pw-1").status_code == 302
    assert (
        other.post("/accounts/2fa/authenticate/", {"code": fresh_totp_code(STAFF_TOTP_SECRET)}).status_code
        == 302
    )
    assert _is_signed_in(other)
    assert User.objects.get(username="sam").last_login is None
