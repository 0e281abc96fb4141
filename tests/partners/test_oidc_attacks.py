"""OpenID Connect sign-in under attack, against two real oidc-provider IdPs on loopback: Acme's, and Globex's,
which Globex runs and which here plays the hostile IdP of a mix-up attack.

Every refusal answers allauth's "Sign-in failed" page (401), is recorded as a refused sign-in through the
adapter's on_authentication_error, and leaves nobody created or signed in. (Refusals of a *valid* answer — wrong
partner, inactive partner, email outside the partner's domains — are in test_sign_in_binding.py and
test_identity_binding.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from allauth.socialaccount.models import SocialAccount

from partners.models import Membership
from portal.models import User
from tests.fixtures.domain import build_partner
from tests.fixtures.peers import ALICE, running_idp
from tests.helpers import begin_oidc_sign_in, refusals, session_user_id, signed_in_sessions
from tests.peers.oidc_idp import OidcIdp, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

FAILED = "Your identity provider's answer could not be accepted. Nothing was changed."


@pytest.fixture
def globex_idp(live_server) -> Iterator[OidcIdp]:  # type: ignore[no-untyped-def]
    """Globex's IdP: it knows an `alice` with Alice's subject and email."""
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


@pytest.fixture
def partners(live_server, settings, acme_idp, globex_idp):  # type: ignore[no-untyped-def]
    settings.PUBLIC_URL = live_server.url
    acme = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret", provision=False)
    globex = build_partner(
        "globex", issuer=globex_idp.issuer, client_secret="globex-client-secret", provision=False
    )
    return acme.partner, globex.partner


def _authorization_response(live_server, provider_id: str, http: requests.Session) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Signs Alice in at the IdP behind `provider_id` and stops at the redirect back to Porte: its query."""
    back = sign_in(
        http,
        begin_oidc_sign_in(http, live_server.url, provider_id),
        ALICE.username,
        ALICE.password,
        follow_callback=False,
    )
    location = back.headers["Location"]
    assert location.startswith(f"{live_server.url}/accounts/oidc/{provider_id}/login/callback/?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _callback(
    live_server, http: requests.Session, provider_id: str, params: dict[str, str]
) -> requests.Response:  # type: ignore[no-untyped-def]
    return http.get(f"{live_server.url}/accounts/oidc/{provider_id}/login/callback/?{urlencode(params)}")


def _assert_refused(response: requests.Response, refusal: dict[str, object]) -> None:
    assert response.status_code == 401 and FAILED in response.text
    assert refusals()[-1] == refusal


def _assert_nobody_signed_in(  # type: ignore[no-untyped-def]
    live_server, *sessions: requests.Session, users: int = 0, signed_in: int = 0
) -> None:
    assert User.objects.count() == SocialAccount.objects.count() == Membership.objects.count() == users
    assert signed_in_sessions() == signed_in
    for http in sessions:
        assert session_user_id(http) is None
        home = http.get(f"{live_server.url}/", allow_redirects=False)
        assert home.status_code == 302 and home.headers["Location"] == "/sign-in/?next=/"


def test_the_authorisation_request_carries_a_nonce_and_pkce_s256(live_server, partners, acme_idp):
    http = requests.Session()
    first = begin_oidc_sign_in(http, live_server.url, "acme")
    second = begin_oidc_sign_in(http, live_server.url, "acme")

    queries = []
    for to_idp in (first, second):
        assert to_idp.status_code == 302
        url = urlsplit(to_idp.headers["Location"])
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{acme_idp.issuer}/auth"
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        assert query["response_type"] == "code" and query["client_id"] == "porte-acme"
        assert query["redirect_uri"] == f"{live_server.url}/accounts/oidc/acme/login/callback/"
        assert sorted(query["scope"].split()) == ["email", "groups", "openid", "profile"]
        assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
        assert len(query["nonce"]) >= 32 and len(query["state"]) >= 12
        queries.append(query)
    # Fresh values for every sign-in.
    for key in ("nonce", "state", "code_challenge"):
        assert queries[0][key] != queries[1][key]


def test_a_code_and_state_from_idp_a_delivered_to_idp_bs_callback_are_refused(live_server, partners):
    """The state is bound to the provider it was issued for: Acme's authorisation response, delivered to Globex's
    callback, is refused before any code is exchanged."""
    _, globex = partners
    http = requests.Session()
    params = _authorization_response(live_server, "acme", http)

    refused = _callback(live_server, http, "globex", params)

    _assert_refused(
        refused,
        {
            "partner_id": globex.pk,
            "provider_id": "globex",
            "reason": "oidc_iss_mismatch",
            "detail": f"The response's iss is {params['iss']!r} (mix-up).",
            "subject": "",
        },
    )
    _assert_nobody_signed_in(live_server, http)


def test_idp_as_code_with_a_state_issued_for_idp_b_is_refused(live_server, partners):
    """The mix-up the other way round: the browser started a Globex sign-in, and Acme's code arrives at Globex's
    callback with Globex's state. Porte exchanges it at Globex's token endpoint, with Globex's client credentials
    and PKCE verifier, where it is not valid."""
    _, globex = partners
    http = requests.Session()
    globex_state = parse_qs(
        urlsplit(begin_oidc_sign_in(http, live_server.url, "globex").headers["Location"]).query
    )
    acme_params = _authorization_response(live_server, "acme", http)

    refused = _callback(
        live_server, http, "globex", {"code": acme_params["code"], "state": globex_state["state"][0]}
    )

    _assert_refused(
        refused,
        {
            "partner_id": globex.pk,
            "provider_id": "globex",
            "reason": "oidc_token_rejected",
            "detail": 'Error retrieving access token: b\'{"error":"invalid_grant",'
            '"error_description":"grant request is invalid"}\'',
            "subject": "",
        },
    )
    _assert_nobody_signed_in(live_server, http)


def test_an_authorisation_response_naming_another_issuer_is_refused(
    live_server, partners, acme_idp, globex_idp
):
    """RFC 9207: oidc-provider names itself in the `iss` parameter of its authorisation response; a response
    whose `iss` is another IdP is a mix-up and is refused (the state is left for the genuine response)."""
    acme, _ = partners
    http = requests.Session()
    params = _authorization_response(live_server, "acme", http)
    assert params["iss"] == acme_idp.issuer

    refused = _callback(live_server, http, "acme", {**params, "iss": globex_idp.issuer})

    _assert_refused(
        refused,
        {
            "partner_id": acme.pk,
            "provider_id": "acme",
            "reason": "oidc_iss_mismatch",
            "detail": f"The response's iss is {globex_idp.issuer!r} (mix-up).",
            "subject": "",
        },
    )
    _assert_nobody_signed_in(live_server, http)
    # The genuine response, with the right `iss`, still completes this browser's sign-in.
    landed = _callback(live_server, http, "acme", params)
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert session_user_id(http) == str(User.objects.get().pk)


def test_a_used_state_cannot_be_replayed(live_server, partners):
    """A callback URL used once (e.g. read from history or a proxy log) signs nobody in again: not in the same
    browser, not in another one."""
    acme, _ = partners
    http = requests.Session()
    params = _authorization_response(live_server, "acme", http)
    landed = _callback(live_server, http, "acme", params)
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    alice = User.objects.get()
    http.post(f"{live_server.url}/accounts/logout/", data={"csrfmiddlewaretoken": http.cookies["csrftoken"]})
    assert session_user_id(http) is None

    again = _callback(live_server, http, "acme", params)
    attacker = requests.Session()
    stolen = _callback(live_server, attacker, "acme", params)

    refusal = {
        "partner_id": acme.pk,
        "provider_id": "acme",
        "reason": "oidc_state_unknown",
        "subject": "",
    }
    for refused in (again, stolen):
        assert refused.status_code == 401 and FAILED in refused.text
    assert refusals() == [refusal, refusal]
    _assert_nobody_signed_in(live_server, http, attacker, users=1)
    assert User.objects.get() == alice


def test_a_forged_callback_without_a_sign_in_is_refused(live_server, partners):
    """A callback carrying a made-up code and state (no sign-in was started in this browser)."""
    acme, _ = partners
    http = requests.Session()

    refused = _callback(live_server, http, "acme", {"code": "forged-code", "state": "forged-state"})

    _assert_refused(
        refused,
        {"partner_id": acme.pk, "provider_id": "acme", "reason": "oidc_state_unknown", "subject": ""},
    )
    _assert_nobody_signed_in(live_server, http)
