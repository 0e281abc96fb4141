"""What the partner's IdP asserts beyond the subject, against a real oidc-provider IdP: the email must be in the
partner's domains (when the partner says so), a changed email or name keeps the same Porte person, and every
sign-in refreshes the groups that decide what they may request.

Complements test_sign_in_binding.py (another partner's IdP, inactive partners, staff, home-realm discovery).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import requests
from allauth.socialaccount.models import SocialAccount

from partners.models import Membership, Partner
from portal.models import AuditEvent, User
from tests.fixtures.domain import build_partner
from tests.fixtures.peers import ALICE
from tests.helpers import begin_oidc_sign_in, refusals, session_user_id, signed_in_sessions
from tests.peers.oidc_idp import OidcIdp, OidcIdpError, OidcUser, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

OUTSIDE = "The email address your identity provider gave is not in your organisation&#x27;s domains"
ASK_IT = "Ask your organisation&#x27;s IT team to check your account."
CLIENT_SECRET = "acme-client-secret"


def _carol(email: str) -> OidcUser:
    return OidcUser(
        username="carol",
        password="carol-pw",
        sub="acme-0042",
        email=email,
        name="Carol Diaz",
        groups=["engineers"],
        amr=["pwd"],
        acr="urn:porte:password",
    )


def _client(live_server) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {
        "client_id": "porte-acme",
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [f"{live_server.url}/accounts/oidc/acme/login/callback/"],
    }


def _start(clients: list[dict[str, object]], users: list[OidcUser], port: int | None = None) -> OidcIdp:
    """Start oidc-provider, once more if node hangs before listening (see tests.fixtures.peers.running_idp)."""
    for attempt in range(3):
        try:
            return OidcIdp(clients, users, title="Acme Corp sign-in", port=port).start()
        except OidcIdpError as exc:
            if "did not print" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def idp_for(live_server, settings) -> Iterator:  # type: ignore[no-untyped-def]
    """Runs Acme's IdP with the given users; calling it again restarts the IdP on the same port (same issuer)
    with new users, as when the partner's IT team edits someone's account."""
    settings.PUBLIC_URL = live_server.url
    running: list[OidcIdp] = []

    def start(*users: OidcUser) -> OidcIdp:
        port = None
        if running:
            port = running[-1].port
            running.pop().stop()
        running.append(_start([_client(live_server)], list(users), port=port))
        return running[-1]

    yield start
    for idp in running:
        idp.stop()


def _sign_in(live_server, user: OidcUser) -> tuple[requests.Session, requests.Response]:  # type: ignore[no-untyped-def]
    http = requests.Session()
    return http, sign_in(
        http, begin_oidc_sign_in(http, live_server.url, "acme"), user.username, user.password
    )


def _roles(live_server, http: requests.Session) -> list[str]:  # type: ignore[no-untyped-def]
    return [role["slug"] for role in http.get(f"{live_server.url}/api/v1/roles/").json()]


# --- the partner's email domains --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email",
    ["carol@personal.example", "carol@eu.acme.example", "carol@acme.example.evil.example", "carol"],
)
def test_an_email_outside_the_partners_domains_is_refused_with_a_clear_page(live_server, idp_for, email):
    idp = idp_for(_carol(email))
    world = build_partner("acme", issuer=idp.issuer, client_secret=CLIENT_SECRET, provision=False)

    http, landed = _sign_in(live_server, _carol(email))

    assert landed.status_code == 403
    assert "Sign-in refused" in landed.text and OUTSIDE in landed.text and ASK_IT in landed.text
    assert refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "email_outside_partner_domains",
            "subject": "acme-0042",
        }
    ]
    assert (
        not User.objects.exists() and not SocialAccount.objects.exists() and not Membership.objects.exists()
    )
    assert session_user_id(http) is None and signed_in_sessions() == 0
    home = http.get(f"{live_server.url}/", allow_redirects=False)
    assert home.status_code == 302 and home.headers["Location"] == "/sign-in/?next=/"


def test_an_email_outside_the_partners_domains_is_accepted_when_the_partner_does_not_enforce_them(
    live_server, idp_for
):
    carol = _carol("carol@personal.example")
    idp = idp_for(carol)
    world = build_partner("acme", issuer=idp.issuer, client_secret=CLIENT_SECRET, provision=False)
    Partner.objects.filter(pk=world.partner.pk).update(enforce_email_domains=False)

    http, landed = _sign_in(live_server, carol)

    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    user = User.objects.get(socialaccount__provider="acme", socialaccount__uid=carol.sub)
    assert user.email == "carol@personal.example" and user.membership.partner == world.partner
    assert session_user_id(http) == str(user.pk)
    assert refusals() == []


def test_an_email_in_the_partners_domains_matches_whatever_its_case(live_server, idp_for):
    carol = _carol("Carol@ACME.Example")
    idp = idp_for(carol)
    build_partner("acme", issuer=idp.issuer, client_secret=CLIENT_SECRET, provision=False)

    http, landed = _sign_in(live_server, carol)

    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert session_user_id(http) == str(User.objects.get().pk)
    assert refusals() == []


# --- the same person over time -----------------------------------------------------------------------------------


def test_a_changed_email_name_and_groups_at_the_idp_keep_the_same_person(live_server, idp_for):
    """Alice's IdP account is edited between two sign-ins (the IdP restarts with the same issuer and her same
    subject): Porte still has one Alice, now with the new email, name and groups — and the groups decide at once
    what she may request."""
    idp = idp_for(ALICE)
    world = build_partner("acme", issuer=idp.issuer, client_secret=CLIENT_SECRET, provision=False)
    first_http, landed = _sign_in(live_server, ALICE)
    assert landed.status_code == 200
    alice = User.objects.get()
    assert (alice.email, alice.get_full_name(), alice.membership.groups) == (
        "alice@acme.example",
        "Alice Martin",
        ["engineers"],
    )
    assert _roles(live_server, first_http) == ["readonly"]

    married = dataclasses.replace(
        ALICE, email="alice.dupont@acme.example", name="Alice Dupont", groups=["finance", "auditors"]
    )
    same_issuer = idp_for(married)
    assert same_issuer.issuer == idp.issuer

    http, landed = _sign_in(live_server, married)

    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert User.objects.count() == 1 and SocialAccount.objects.count() == 1
    alice.refresh_from_db()
    assert session_user_id(http) == str(alice.pk)
    assert (alice.email, alice.first_name, alice.last_name) == (
        "alice.dupont@acme.example",
        "Alice",
        "Dupont",
    )
    assert alice.username == "acme.acme-0001"
    assert alice.membership.groups == ["auditors", "finance"]
    assert alice.membership.partner == world.partner
    assert list(
        AuditEvent.objects.filter(
            action="membership.signed_in", object_id=str(alice.membership.pk)
        ).values_list("data", flat=True)
    ) == [{"groups": ["auditors", "finance"], "email": "alice.dupont@acme.example"}]
    # No longer an engineer: the read-only role is not hers to request any more.
    assert _roles(live_server, http) == []

    # Back in engineering: the next sign-in gives it back.
    idp_for(dataclasses.replace(married, groups=["engineers"]))
    http, landed = _sign_in(live_server, married)
    assert landed.status_code == 200
    alice.membership.refresh_from_db()
    assert alice.membership.groups == ["engineers"]
    assert _roles(live_server, http) == ["readonly"]
    assert User.objects.count() == 1 and refusals() == []
