"""Sign-in binds a person to (identity provider, subject), never to an email address, and only an active
partner's IdP signs anyone in — checked against real OpenID Connect IdPs (oidc-provider) on loopback.

The attacks: another partner's IdP (which that partner controls) asserts Alice's subject and email; a suspended
partner's IdP still answers; a Porte staff account is linked to a partner identity.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django.contrib.sessions.models import Session
from django.test import Client

from partners.models import IdentityProvider, Membership, Partner
from partners.selectors import identity_provider_for_email
from portal.models import AuditEvent, User
from tests.fixtures.domain import build_partner, sign_in_as
from tests.fixtures.peers import ALICE, running_idp
from tests.helpers import begin_oidc_sign_in
from tests.peers.oidc_idp import OidcIdp, sign_in

NOT_ACTIVE = "Your organisation&#x27;s access to Porte is not active. Contact your Porte sponsor."
WRONG_IDP = "This identity provider cannot sign in this account."


@pytest.fixture
def globex_idp(live_server) -> Iterator[OidcIdp]:  # type: ignore[no-untyped-def]
    """Globex's IdP, run by Globex: it asserts whatever it likes, here Alice's exact subject and email."""
    client = {
        "client_id": "porte-globex",
        "client_secret": "globex-client-secret",
        "redirect_uris": [f"{live_server.url}/accounts/oidc/globex/login/callback/"],
    }
    idp = running_idp([client], [ALICE], title="Globex sign-in")
    try:
        yield idp
    finally:
        idp.stop()


def _sign_in(live_server, provider_id: str) -> tuple[requests.Session, requests.Response]:  # type: ignore[no-untyped-def]
    """A fresh browser session signing in as the IdP's `alice` through Porte's `provider_id` login."""
    http = requests.Session()
    landed = sign_in(
        http, begin_oidc_sign_in(http, live_server.url, provider_id), ALICE.username, ALICE.password
    )
    return http, landed


def _session_user_id(http: requests.Session) -> str | None:
    """Who Porte's session cookie in this browser belongs to (None: not signed in)."""
    key = http.cookies.get("sessionid")
    session = Session.objects.filter(session_key=key).first() if key else None
    return session.get_decoded().get("_auth_user_id") if session else None


def _refusals() -> list[dict[str, object]]:
    return [
        {"partner_id": e.partner_id, **e.data} for e in AuditEvent.objects.filter(action="signin.refused")
    ]


# --- identity is (IdP, subject) -------------------------------------------------------------------------------


def _alice_signed_in_through_acme(live_server) -> User:  # type: ignore[no-untyped-def]
    http, landed = _sign_in(live_server, "acme")
    assert landed.status_code == 200 and "Acme Corp" in landed.text
    alice = User.objects.get(socialaccount__provider="acme", socialaccount__uid=ALICE.sub)
    # Her internal username comes from the identity, not from her email.
    assert alice.username == "acme.acme-0001"
    assert _session_user_id(http) == str(alice.pk)
    return alice


def _assert_alice_untouched(alice: User, acme: Partner) -> None:
    """Still only her Acme identity, still Acme's, not signed in again by anyone."""
    before = alice.last_login
    alice.refresh_from_db()
    assert list(SocialAccount.objects.filter(user=alice).values_list("provider", "uid")) == [
        ("acme", ALICE.sub)
    ]
    assert not SocialAccount.objects.filter(user=alice, provider="globex").exists()
    assert alice.membership.partner == acme
    assert alice.last_login == before


@pytest.mark.django_db(transaction=True)
def test_another_partners_idp_asserting_alices_subject_and_email_is_refused(
    live_server, acme_idp, globex_idp
):
    """By default a partner's IdP may only assert addresses in that partner's domains: Globex's IdP claiming
    alice@acme.example is refused and recorded, nobody is created or signed in."""
    acme = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    globex = build_partner(
        "globex", issuer=globex_idp.issuer, client_secret="globex-client-secret", provision=False
    )
    alice = _alice_signed_in_through_acme(live_server)

    mallory_http, landed = _sign_in(live_server, "globex")

    assert landed.status_code == 403
    assert "is not in your organisation&#x27;s domains registered with Porte" in landed.text
    assert _session_user_id(mallory_http) is None
    assert _refusals() == [
        {
            "partner_id": globex.partner.pk,
            "provider_id": "globex",
            "reason": "email_outside_partner_domains",
            "subject": ALICE.sub,
        }
    ]
    assert User.objects.count() == 1 and not SocialAccount.objects.filter(provider="globex").exists()
    _assert_alice_untouched(alice, acme.partner)


@pytest.mark.django_db(transaction=True)
def test_another_partners_idp_asserting_alices_subject_and_email_never_reaches_her(
    live_server, acme_idp, globex_idp
):
    """Even where Globex may assert any address (its email-domain check switched off, set directly in the
    database as an admin would), its assertion of Alice's subject and email makes a separate Globex person:
    (globex, acme-0001) is not (acme, acme-0001), and an email address never finds an account."""
    acme = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    globex = build_partner(
        "globex", issuer=globex_idp.issuer, client_secret="globex-client-secret", provision=False
    )
    Partner.objects.filter(pk=globex.partner.pk).update(enforce_email_domains=False)
    alice = _alice_signed_in_through_acme(live_server)

    mallory_http, landed = _sign_in(live_server, "globex")

    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert "Globex Corp" in landed.text and "Acme" not in landed.text
    impostor = User.objects.get(socialaccount__provider="globex", socialaccount__uid=ALICE.sub)
    assert impostor.pk != alice.pk
    assert impostor.username == "globex.acme-0001"
    assert impostor.membership.partner == globex.partner
    assert _session_user_id(mallory_http) == str(impostor.pk)
    _assert_alice_untouched(alice, acme.partner)
    # What the impostor's session can see is Globex's, never Acme's.
    assert requests.get(f"{live_server.url}/api/v1/roles/", cookies=mallory_http.cookies).json() == [
        {
            "slug": "readonly",
            "name": "Read-only",
            "description": "",
            "partner": "globex",
            "max_duration_minutes": 120,
        }
    ]

    # And Alice signing in again through Acme still reaches her own account.
    again_http, landed = _sign_in(live_server, "acme")
    assert "Acme Corp" in landed.text
    assert _session_user_id(again_http) == str(alice.pk)
    assert User.objects.count() == 2


# --- inactive partners ----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_suspended_partner_sign_in_is_refused_and_recorded(live_server, acme_idp):
    """The partner is suspended (set directly in the database, as an admin action would) after Alice started
    signing in, or from a bookmarked login link: her IdP still authenticates her, Porte refuses her on return."""
    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    http = requests.Session()
    to_idp = begin_oidc_sign_in(http, live_server.url, "acme")
    Partner.objects.filter(pk=world.partner.pk).update(status=Partner.Status.SUSPENDED)

    refused = sign_in(http, to_idp, ALICE.username, ALICE.password)

    assert refused.status_code == 403
    assert "Sign-in refused" in refused.text and NOT_ACTIVE in refused.text
    assert _refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "partner_inactive",
            "subject": ALICE.sub,
        }
    ]
    assert (
        not User.objects.exists() and not SocialAccount.objects.exists() and not Membership.objects.exists()
    )
    assert _session_user_id(http) is None
    home = http.get(f"{live_server.url}/", allow_redirects=False)
    assert home.status_code == 302 and home.headers["Location"] == "/sign-in/?next=/"

    # From a bookmarked login link (home-realm discovery no longer routes to a suspended partner):
    _, landed = _sign_in(live_server, "acme")
    assert landed.status_code == 403 and NOT_ACTIVE in landed.text
    assert len(_refusals()) == 2 and not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_known_user_of_a_suspended_partner_is_refused(live_server, acme_idp):
    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    _sign_in(live_server, "acme")
    alice = User.objects.get(socialaccount__provider="acme", socialaccount__uid=ALICE.sub)
    signed_in_at = alice.membership.last_sign_in_at
    Partner.objects.filter(pk=world.partner.pk).update(status=Partner.Status.SUSPENDED)

    http, landed = _sign_in(live_server, "acme")

    assert landed.status_code == 403 and NOT_ACTIVE in landed.text
    assert _session_user_id(http) is None
    alice.membership.refresh_from_db()
    assert alice.membership.last_sign_in_at == signed_in_at
    assert [r["reason"] for r in _refusals()] == ["partner_inactive"]


@pytest.mark.django_db(transaction=True)
def test_disabled_idp_cannot_start_a_sign_in(live_server, acme_idp):
    """A disabled IdP is not offered at all (allauth answers 404 for the login link) and is never contacted."""
    build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    IdentityProvider.objects.filter(provider_id="acme").update(is_enabled=False)
    response = requests.get(f"{live_server.url}/accounts/oidc/acme/login/", allow_redirects=False)
    assert response.status_code == 404
    assert not User.objects.exists()


# --- staff ----------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("with_membership", [False, True], ids=["staff", "staff-with-acme-membership"])
def test_staff_account_is_never_signed_in_through_a_partner_idp(
    live_server, acme_idp, staff, with_membership
):
    """Even if a staff account ends up linked to a partner identity (an admin's mistake, simulated by creating
    the link directly), that IdP cannot sign it in: staff sign in locally, with MFA."""
    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    sam = staff
    SocialAccount.objects.create(user=sam, provider="acme", uid=ALICE.sub)
    if with_membership:
        Membership.objects.create(user=sam, partner=world.partner, groups=["engineers"])

    http, landed = _sign_in(live_server, "acme")

    assert landed.status_code == 403 and WRONG_IDP in landed.text
    assert _session_user_id(http) is None
    admin = http.get(f"{live_server.url}/admin/", allow_redirects=False)
    assert admin.status_code == 302 and admin.headers["Location"] == "/sign-in/?next=/admin/"
    assert _refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "identity_partner_mismatch",
            "subject": ALICE.sub,
        }
    ]
    sam.refresh_from_db()
    assert sam.last_login is None and User.objects.count() == 1


# --- home-realm discovery -------------------------------------------------------------------------------------


@pytest.fixture
def acme_offline(db) -> Partner:  # type: ignore[no-untyped-def]
    """Acme with its IdP registered (never contacted by these tests) and no AWS."""
    return build_partner("acme", provision=False).partner


@pytest.mark.parametrize("email", ["alice@acme.example", "Alice@ACME.Example", " alice@acme.example "])
def test_identity_provider_for_email_finds_the_partners_idp(acme_offline, email):
    idp = identity_provider_for_email(email)
    assert idp is not None and idp.provider_id == "acme" and idp.partner == acme_offline


@pytest.mark.parametrize(
    "email",
    ["bob@globex.example", "alice@eu.acme.example", "alice@acme.example.evil", "acme.example", "alice@", ""],
)
def test_identity_provider_for_email_knows_only_exact_partner_domains(acme_offline, email):
    assert identity_provider_for_email(email) is None


@pytest.mark.parametrize(
    "status", [Partner.Status.ONBOARDING, Partner.Status.SUSPENDED, Partner.Status.OFFBOARDED]
)
def test_identity_provider_for_email_ignores_inactive_partners(acme_offline, status):
    Partner.objects.filter(pk=acme_offline.pk).update(status=status)
    assert identity_provider_for_email("alice@acme.example") is None


def test_identity_provider_for_email_ignores_a_disabled_idp(acme_offline):
    IdentityProvider.objects.filter(partner=acme_offline).update(is_enabled=False)
    assert identity_provider_for_email("alice@acme.example") is None


def test_sign_in_page_routes_a_known_domain_to_its_idp(acme_offline):
    client = Client()
    page = client.get("/sign-in/")
    assert page.status_code == 200 and "Work email" in page.content.decode()
    response = client.post("/sign-in/", {"email": "Alice@Acme.Example"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/oidc/acme/login/"


def test_sign_in_page_refuses_an_unknown_domain_saying_what_to_do(acme_offline):
    response = Client().post("/sign-in/", {"email": "bob@unknown.example"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "No organisation with access to Porte uses this email domain." in page
    assert "ask your Porte sponsor to onboard your organisation" in page


def test_sign_in_page_does_not_route_to_a_suspended_partner(acme_offline):
    Partner.objects.filter(pk=acme_offline.pk).update(status=Partner.Status.SUSPENDED)
    response = Client().post("/sign-in/", {"email": "alice@acme.example"})
    assert response.status_code == 400
    assert "No organisation with access to Porte uses this email domain." in response.content.decode()


def test_sign_in_page_sends_a_signed_in_user_home(acme_offline):
    from tests.fixtures.domain import make_member

    client = Client()
    sign_in_as(client, make_member(acme_offline, "alice"))
    response = client.get("/sign-in/")
    assert response.status_code == 302 and response["Location"] == "/"
