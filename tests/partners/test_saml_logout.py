"""SAML 2.0 Single Logout that starts at the partner's IdP, against a real SimpleSAMLphp.

Alice signs in through her IdP in two browsers (two IdP sessions, two SessionIndexes). She signs out at the IdP in
one: its LogoutRequest, signed, ends that Porte session and not the other, even when the browser that brings it
carries no Porte cookie (a SameSite=Lax cookie is not sent along a cross-site POST); the IdP gets its
LogoutResponse. LogoutRequests Porte cannot trust (unsigned, altered, replayed, for no SAML IdP, not SAML at all)
are refused with 400, audited with the check that failed, and end nothing.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from django.test import Client

from partners import idp_validation
from partners import services as partner_services
from partners.models import FederatedSession
from portal.models import AuditEvent, User
from tests.fixtures.domain import build_saml_partner, saml_sp
from tests.helpers import begin_saml_sign_in, self_signed_certificate_b64, session_user_id
from tests.peers.saml_idp import SamlIdp, SamlUser, sign_in

ALICE = SamlUser("alice", "alice-pw", uid="acme-0001", email="alice@acme.example", name="Alice Martin")
REFUSED = "Your identity provider&#x27;s sign-out could not be accepted, so Porte signed nobody out."


def _refusals() -> list[dict[str, Any]]:
    return [e.data for e in AuditEvent.objects.filter(action="idp.logout_refused").order_by("pk")]


def _logouts() -> list[dict[str, Any]]:
    return [e.data for e in AuditEvent.objects.filter(action="session.idp_logout").order_by("pk")]


# --- with the real IdP -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def acme_saml(live_server: Any) -> Iterator[SamlIdp]:
    sp = {**saml_sp(live_server.url, "acme"), "slo_url": f"{live_server.url}/accounts/saml/acme/sls/"}
    with SamlIdp([ALICE], [sp], title="Acme Corp sign-in") as idp:
        yield idp


@pytest.fixture
def _public_url(live_server: Any, settings: Any) -> None:
    settings.PUBLIC_URL = live_server.url


def _signed_in(live_server: Any, *browsers: requests.Session) -> User:
    for browser in browsers:
        landed = sign_in(
            browser, begin_saml_sign_in(browser, live_server.url, "acme"), ALICE.username, ALICE.password
        )
        assert landed.url == f"{live_server.url}/", landed.text[:300]
    alice = User.objects.get(socialaccount__uid=ALICE.uid)
    assert all(session_user_id(browser) == str(alice.pk) for browser in browsers)
    return alice


def _with_request(url: str, xml: bytes | None = None, **params: str | None) -> str:
    """The LogoutRequest URL with its SAMLRequest replaced by `xml` (deflated, as the binding carries it) and
    `params` set or, when None, dropped."""
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    if xml is not None:
        deflate = zlib.compressobj(wbits=-15)
        query["SAMLRequest"] = base64.b64encode(deflate.compress(xml) + deflate.flush()).decode()
    for name, value in params.items():
        query.pop(name, None)
        if value is not None:
            query[name] = value
    return f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(query)}"


def _request_xml(url: str) -> bytes:
    saml_request = parse_qs(urlsplit(url).query)["SAMLRequest"][0]
    return zlib.decompress(base64.b64decode(saml_request), -15)


@pytest.mark.idp
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_public_url")
def test_signing_out_at_the_idp_ends_that_porte_session_only(live_server: Any, acme_saml: SamlIdp) -> None:
    build_saml_partner("acme", acme_saml)
    laptop, phone = requests.Session(), requests.Session()
    alice = _signed_in(live_server, laptop, phone)
    noted = FederatedSession.objects.filter(subject=ALICE.uid)
    sids = set(noted.values_list("sid", flat=True))
    assert len(sids) == 2 and "" not in sids  # one SessionIndex per IdP session

    done = acme_saml.log_out(laptop, f"{live_server.url}/")

    # The IdP took Porte's LogoutResponse, finished its logout and sent the browser where it was asked to.
    assert done.url == f"{live_server.url}/sign-in/?next=/", acme_saml.log()
    assert session_user_id(laptop) is None
    assert session_user_id(phone) == str(alice.pk)  # her other session is another IdP session
    assert phone.get(f"{live_server.url}/").url == f"{live_server.url}/"
    assert noted.count() == 1
    logout = AuditEvent.objects.get(action="session.idp_logout")
    assert logout.object_id == str(alice.pk)
    assert logout.data == {"how": "saml_slo", "sessions_ended": 1, "by_sid": True}
    assert _refusals() == []
    # Signed out at the IdP too: signing in again there asks for her password.
    assert _signed_in(live_server, laptop) == alice


@pytest.mark.idp
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_public_url")
def test_the_logout_request_ends_the_session_it_names_whichever_browser_brings_it(
    live_server: Any, acme_saml: SamlIdp
) -> None:
    """The LogoutRequest reaches Porte in a browser without Porte's cookie: the session it names ends all the
    same, and the IdP is answered. Brought again, it is a replay: refused, audited."""
    build_saml_partner("acme", acme_saml)
    laptop = requests.Session()
    _signed_in(live_server, laptop)
    logout_request = acme_saml.log_out(laptop, f"{live_server.url}/", follow_sp=False)
    assert logout_request.startswith(f"{live_server.url}/accounts/saml/acme/sls/?SAMLRequest=")

    cookieless = requests.Session()
    answered = cookieless.get(logout_request, allow_redirects=False)

    assert answered.status_code == 302, answered.text[:500]
    assert answered.headers["Location"].startswith(f"{acme_saml.slo_url}?SAMLResponse=")
    assert session_user_id(laptop) is None
    assert _logouts() == [{"how": "saml_slo", "sessions_ended": 1, "by_sid": True}]
    # The IdP accepts the (unsigned) LogoutResponse and finishes its logout.
    assert laptop.get(answered.headers["Location"]).url == f"{live_server.url}/sign-in/?next=/"

    replayed = requests.Session().get(logout_request, allow_redirects=False)
    assert replayed.status_code == 400 and REFUSED in replayed.text
    assert _refusals() == [{"provider_id": "acme", "check": "replayed"}]


@pytest.mark.idp
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_public_url")
def test_a_logout_request_not_signed_by_the_idp_ends_nothing(live_server: Any, acme_saml: SamlIdp) -> None:
    """The IdP's own LogoutRequest for Alice's session, with its signature removed, or with another person's
    NameID (or another session's index) put in: refused, audited; Alice stays signed in."""
    build_saml_partner("acme", acme_saml)
    laptop, phone = requests.Session(), requests.Session()
    alice = _signed_in(live_server, laptop, phone)
    genuine = acme_saml.log_out(laptop, f"{live_server.url}/", follow_sp=False)
    xml = _request_xml(genuine)
    assert xml.count(f">{ALICE.uid}</saml:NameID>".encode()) == 1
    phone_sid = FederatedSession.objects.exclude(session_key=laptop.cookies["sessionid"]).get().sid
    laptop_sid = FederatedSession.objects.get(session_key=laptop.cookies["sessionid"]).sid
    assert xml.count(laptop_sid.encode()) == 1

    hostile = {
        "unsigned": _with_request(genuine, Signature=None, SigAlg=None),
        "forged NameID": _with_request(genuine, xml.replace(b">acme-0001<", b">acme-0002<")),
        "another session": _with_request(genuine, xml.replace(laptop_sid.encode(), phone_sid.encode())),
        "SHA-1": _with_request(genuine, SigAlg="http://www.w3.org/2000/09/xmldsig#rsa-sha1"),
    }
    for label, url in hostile.items():
        refused = requests.Session().get(url, allow_redirects=False)
        assert refused.status_code == 400 and REFUSED in refused.text, label
        assert _refusals()[-1] == {"provider_id": "acme", "check": "signature"}, label
    assert len(_refusals()) == len(hostile)
    assert session_user_id(laptop) == session_user_id(phone) == str(alice.pk)
    assert FederatedSession.objects.count() == 2 and _logouts() == []


@pytest.mark.idp
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_public_url")
def test_with_no_known_logout_endpoint_the_session_ends_and_the_browser_comes_to_porte(
    live_server: Any, acme_saml: SamlIdp
) -> None:
    """Porte keeps where the IdP takes its LogoutResponse from the metadata it was onboarded with (pasted XML
    included); an IdP whose metadata named none, and that has no metadata URL to read it from, still has the
    session ended, and the browser is sent to Porte's sign-in page instead (the IdP is not answered)."""
    assert idp_validation.saml_metadata_parse(acme_saml.metadata_xml()).slo_url == acme_saml.slo_url
    world = build_saml_partner("acme", acme_saml)
    assert world.partner.identity_providers.get().saml_slo_url == acme_saml.slo_url
    world.partner.identity_providers.update(saml_metadata_url="", saml_slo_url="")
    laptop = requests.Session()
    _signed_in(live_server, laptop)
    logout_request = acme_saml.log_out(laptop, f"{live_server.url}/", follow_sp=False)

    answered = laptop.get(logout_request, allow_redirects=False)

    assert answered.status_code == 302 and answered.headers["Location"] == "/sign-in/"
    assert session_user_id(laptop) is None
    assert _logouts() == [{"how": "saml_slo", "sessions_ended": 1, "by_sid": True}]


# --- without the IdP: what is refused before any signature is checked ------------------------------------------

HOST = "porte.example.com"  # python3-saml wants a dotted host name


@pytest.fixture
def umbrella(settings: Any) -> Client:
    """A SAML partner whose IdP does not run (its LogoutRequests are never validly signed), and a browser."""
    settings.PUBLIC_URL = f"http://{HOST}"  # SAML is served on the public origin only
    settings.ALLOWED_HOSTS = [HOST]
    now = datetime.now(UTC)
    partner = partner_services.partner_create(name="Umbrella", slug="umbrella", domains=["umbrella.example"])
    partner_services.identity_provider_create_saml(
        partner=partner,
        provider_id="umbrella",
        display_name="Umbrella",
        metadata=idp_validation.SamlIdpInfo(
            entity_id="https://idp.umbrella.example/",
            sso_url="https://idp.umbrella.example/sso",
            certificates=[self_signed_certificate_b64("idp.umbrella.example", now, now + timedelta(days=30))],
            certificate_not_after=now + timedelta(days=30),
        ),
    )
    return Client(HTTP_HOST=HOST)


def _deflated(xml: bytes) -> str:
    deflate = zlib.compressobj(wbits=-15)
    return base64.b64encode(deflate.compress(xml) + deflate.flush()).decode()


LOGOUT_REQUEST = (
    b'<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
    b'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_forged" Version="2.0" '
    b'IssueInstant="2030-01-01T00:00:00Z" Destination="http://porte.example.com/accounts/saml/umbrella/sls/">'
    b"<saml:Issuer>https://idp.umbrella.example/</saml:Issuer>"
    b"<saml:NameID>umbrella-0001</saml:NameID></samlp:LogoutRequest>"
)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("slug", "method", "params", "check"),
    [
        pytest.param(
            "nobody", "get", {"SAMLRequest": _deflated(LOGOUT_REQUEST)}, "identity_provider", id="unknown"
        ),
        pytest.param("umbrella", "get", {}, "binding", id="no-request"),
        pytest.param("umbrella", "post", {"SAMLRequest": _deflated(LOGOUT_REQUEST)}, "binding", id="post"),
        pytest.param("umbrella", "get", {"SAMLResponse": _deflated(b"<x/>")}, "binding", id="response"),
        pytest.param("umbrella", "get", {"SAMLRequest": "%%% not base64 %%%"}, "malformed", id="garbage"),
        pytest.param("umbrella", "get", {"SAMLRequest": _deflated(b"<unclosed>")}, "malformed", id="not-xml"),
        pytest.param(
            "umbrella",
            "get",
            {"SAMLRequest": _deflated(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')},
            "malformed",
            id="doctype",
        ),
        pytest.param(
            "umbrella", "get", {"SAMLRequest": _deflated(LOGOUT_REQUEST)}, "signature", id="unsigned"
        ),
        pytest.param(
            "umbrella",
            "get",
            {"SAMLRequest": _deflated(LOGOUT_REQUEST), "SigAlg": "x", "Signature": "AAAA"},
            "signature",
            id="bad-signature",
        ),
    ],
)
def test_a_logout_request_porte_cannot_trust_is_refused_and_audited(
    umbrella: Client, slug: str, method: str, params: dict[str, str], check: str
) -> None:
    url = f"/accounts/saml/{slug}/sls/"
    response = umbrella.get(url, params) if method == "get" else umbrella.post(url, params)

    assert response.status_code == 400
    assert REFUSED in response.content.decode()
    assert _refusals() == [{"provider_id": slug, "check": check}]
    assert _logouts() == []


@pytest.mark.django_db
def test_an_oidc_partner_has_no_saml_logout(acme: Any, umbrella: Client) -> None:
    response = umbrella.get("/accounts/saml/acme/sls/", {"SAMLRequest": _deflated(LOGOUT_REQUEST)})
    assert response.status_code == 400
    assert _refusals() == [{"provider_id": "acme", "check": "identity_provider"}]
