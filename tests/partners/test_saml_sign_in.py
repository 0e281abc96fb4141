"""SAML sign-in against real SimpleSAMLphp IdPs on loopback: a partner user is provisioned just in time from a
signed assertion (identity = persistent NameID), and every way of smuggling an assertion in is refused, recorded,
and leaves nobody created or signed in.

Two IdPs run for the module: Acme's (which also serves the SP entries of the misconfigured partners below), and
Globex's, which Globex controls and may point at whatever SP it likes.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from lxml import etree

from partners.models import IdentityProvider, Membership
from portal.models import AuditEvent, User
from tests.fixtures.domain import build_saml_partner, saml_sp
from tests.helpers import begin_saml_sign_in, refusals, session_user_id, signed_in_sessions
from tests.peers.saml_idp import SamlIdp, SamlUser, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

ALICE = SamlUser(
    "alice",
    "alice-pw",
    uid="acme-0001",
    email="alice@acme.example",
    name="Alice Martin",
    groups=["engineers", "aws-admins"],
)
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
NS = {"samlp": "urn:oasis:names:tc:SAML:2.0:protocol", "saml": "urn:oasis:names:tc:SAML:2.0:assertion"}
FAILED = "Your identity provider's answer could not be accepted. Nothing was changed."
REFUSED = "Your identity provider&#x27;s answer could not be accepted. Sign in again."

# SP entries the IdPs are started with. The live server's URL is only known once it runs, so the IdPs are
# started lazily (module scope) from the session-scoped live_server.
UNSIGNED = {
    "unsigned-response": {"saml20.sign.response": False, "saml20.sign.assertion": True},
    "unsigned-assertion": {"saml20.sign.response": True, "saml20.sign.assertion": False},
    "unsigned": {"saml20.sign.response": False, "saml20.sign.assertion": False},
}
# An IdP misconfigured to send a transient NameID (a fresh random value at every sign-in): SimpleSAMLphp answers
# in the NameID format the AuthnRequest asked for (persistent) unless the request's format is overridden, which a
# core:PHP authproc filter on this SP does, as an IdP administrator could.
TRANSIENT_SP = {
    "NameIDFormat": TRANSIENT,
    "authproc": {"95": {"class": "core:PHP", "code": f"$state['saml:NameIDFormat'] = '{TRANSIENT}';"}},
}


@pytest.fixture(scope="module")
def acme_saml(live_server) -> Iterator[SamlIdp]:  # type: ignore[no-untyped-def]
    sps = [saml_sp(live_server.url, "acme"), saml_sp(live_server.url, "transient", **TRANSIENT_SP)]
    sps += [saml_sp(live_server.url, slug, **extra) for slug, extra in UNSIGNED.items()]
    with SamlIdp([ALICE], sps, title="Acme Corp sign-in") as idp:
        yield idp


@pytest.fixture(scope="module")
def globex_saml(live_server) -> Iterator[SamlIdp]:  # type: ignore[no-untyped-def]
    """Globex's IdP, run by Globex: it knows an `alice` with Alice's uid and email, and also registers Acme's SP
    (an IdP administrator can register any SP they like)."""
    sps = [saml_sp(live_server.url, "globex"), saml_sp(live_server.url, "acme")]
    with SamlIdp([ALICE], sps, title="Globex sign-in") as idp:
        yield idp


@pytest.fixture(autouse=True)
def _public_url(live_server, settings) -> None:  # type: ignore[no-untyped-def]
    settings.PUBLIC_URL = live_server.url


def _response_xml(fields: dict[str, str]) -> etree._Element:
    return etree.fromstring(base64.b64decode(fields["SAMLResponse"]))


def _with_xml(fields: dict[str, str], xml: bytes) -> dict[str, str]:
    return {**fields, "SAMLResponse": base64.b64encode(xml).decode()}


def _assert_nobody_signed_in(live_server, *sessions: requests.Session, users: int = 0) -> None:  # type: ignore[no-untyped-def]
    assert User.objects.count() == users
    assert SocialAccount.objects.count() == users
    assert Membership.objects.count() == users
    for http in sessions:
        assert session_user_id(http) is None
        home = http.get(f"{live_server.url}/", allow_redirects=False)
        assert home.status_code == 302 and home.headers["Location"] == "/sign-in/?next=/"
    assert signed_in_sessions() == users


def _refused_for_protocol(
    response: requests.Response,
    provider_id: str,
    partner_id: int,
    reason: str = "saml_invalid_response",
    detail: str = "",
) -> None:
    """allauth's protocol failure page (401), recorded through the adapter's on_authentication_error with the
    reason (python3-saml's error code) and python3-saml's own words for what was wrong."""
    assert response.status_code == 401 and FAILED in response.text
    assert response.url.endswith(f"/accounts/saml/{provider_id}/acs/finish/")
    refusal = refusals()[-1]
    recorded = refusal.pop("detail")
    assert recorded and detail in recorded
    assert refusal == {"partner_id": partner_id, "provider_id": provider_id, "reason": reason, "subject": ""}


# --- the happy path ---------------------------------------------------------------------------------------------


def _alice_response(http: requests.Session, base_url: str) -> tuple[str, dict[str, str]]:
    """Alice signs in at Acme's IdP from Acme's sign-in page; her browser stops before posting the response:
    (ACS URL, form fields), to post as is or altered."""
    return sign_in(
        http, begin_saml_sign_in(http, base_url, "acme"), ALICE.username, ALICE.password, follow_acs=False
    )


def test_sp_initiated_sign_in_provisions_the_person_from_the_signed_assertion(live_server, acme_saml):
    world = build_saml_partner("acme", acme_saml)
    http = requests.Session()

    to_idp = begin_saml_sign_in(http, live_server.url, "acme")
    assert to_idp.status_code == 302 and to_idp.headers["Location"].startswith(
        acme_saml.sso_url + "?SAMLRequest="
    )
    landed = sign_in(http, to_idp, ALICE.username, ALICE.password)

    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert "Acme Corp · AWS access" in landed.text and "Request access" in landed.text
    account = SocialAccount.objects.get()
    # Identity is the persistent NameID, under the IdP's provider id (not the email, not the `uid` attribute).
    assert (account.provider, account.uid) == ("acme", ALICE.uid)
    alice = account.user
    assert alice.username == "acme.acme-0001"
    assert (alice.email, alice.first_name, alice.last_name) == (ALICE.email, "Alice", "Martin")
    assert not alice.has_usable_password() and not alice.is_staff
    membership = alice.membership
    assert membership.partner == world.partner
    assert membership.identity_provider == IdentityProvider.objects.get(provider_id="acme")
    assert membership.groups == ["aws-admins", "engineers"]
    assert membership.is_active and membership.last_sign_in_at is not None
    assert session_user_id(http) == str(alice.pk)
    created = AuditEvent.objects.get(action="membership.created")
    assert created.data == {"provider_id": "acme", "groups": ["aws-admins", "engineers"]}
    assert refusals() == []

    # Signing in again (a fresh browser) finds the same person: one user, one identity.
    again = requests.Session()
    landed = sign_in(
        again, begin_saml_sign_in(again, live_server.url, "acme"), ALICE.username, ALICE.password
    )
    assert landed.status_code == 200 and session_user_id(again) == str(alice.pk)
    assert User.objects.count() == 1 and SocialAccount.objects.count() == 1


def test_the_idp_answers_with_a_signed_persistent_nameid_for_porte(live_server, acme_saml):
    """What the refusals below are measured against: Acme's IdP's genuine answer to Porte's AuthnRequest."""
    build_saml_partner("acme", acme_saml)
    http = requests.Session()
    acs_url, fields = _alice_response(http, live_server.url)
    assert acs_url == f"{live_server.url}/accounts/saml/acme/acs/"
    root = _response_xml(fields)
    assert root.get("InResponseTo") and root.get("Destination") == acs_url
    assert root.xpath("saml:Assertion/saml:Subject/saml:NameID/@Format", namespaces=NS) == [PERSISTENT]
    assert root.xpath("saml:Assertion/saml:Subject/saml:NameID/text()", namespaces=NS) == [ALICE.uid]
    audience = root.xpath(
        "saml:Assertion/saml:Conditions/saml:AudienceRestriction/saml:Audience/text()", namespaces=NS
    )
    assert audience == [f"{live_server.url}/accounts/saml/acme/metadata/"]


# --- replay -------------------------------------------------------------------------------------------------------


def test_a_replayed_response_is_refused(live_server, acme_saml):
    """The same SAMLResponse posted again — by the same browser after it signed in, or by another browser that
    captured it — is refused: the assertion id is remembered until the assertion expires."""
    world = build_saml_partner("acme", acme_saml)
    http = requests.Session()
    acs_url, fields = _alice_response(http, live_server.url)
    first = http.post(acs_url, data=fields)
    assert first.status_code == 200 and first.url == f"{live_server.url}/"
    alice = User.objects.get()

    again = http.post(acs_url, data=fields)
    attacker = requests.Session()
    stolen = attacker.post(acs_url, data=fields)

    for refused in (again, stolen):
        assert refused.status_code == 403 and REFUSED in refused.text
        assert "This attempt was recorded." in refused.text
    replayed = {"partner_id": world.partner.pk, "provider_id": "acme", "reason": "assertion_replayed"}
    assert refusals() == [{**replayed, "subject": ALICE.uid}] * 2
    _assert_nobody_signed_in(live_server, attacker, users=1)
    # The first sign-in stands; the replay did not sign anyone in again.
    assert session_user_id(http) == str(alice.pk)
    assert AuditEvent.objects.filter(action="membership.signed_in").count() == 0


def test_a_response_is_bound_to_the_browser_that_asked_for_it(live_server, acme_saml):
    """A fresh, genuine response for Alice's pending sign-in, posted from another browser (a login-CSRF or a
    stolen response) is refused: no sign-in is pending there. Once refused, it is burnt for Alice's browser too."""
    world = build_saml_partner("acme", acme_saml)
    alice_browser = requests.Session()
    acs_url, fields = _alice_response(alice_browser, live_server.url)

    other = requests.Session()
    refused = other.post(acs_url, data=fields)

    assert refused.status_code == 403 and REFUSED in refused.text
    assert refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "saml_response_unsolicited",
            "subject": ALICE.uid,
        }
    ]
    late = alice_browser.post(acs_url, data=fields)
    assert late.status_code == 403 and refusals()[-1]["reason"] == "assertion_replayed"
    _assert_nobody_signed_in(live_server, other, alice_browser)


# --- responses Porte did not ask for, or not from this partner's IdP ---------------------------------------------


def test_idp_initiated_sso_is_refused(live_server, acme_saml, caplog):
    world = build_saml_partner("acme", acme_saml)
    http = requests.Session()
    acs_url, fields = acme_saml.idp_initiated_response(
        http,
        f"{live_server.url}/accounts/saml/acme/metadata/",
        ALICE.username,
        ALICE.password,
        relay_state="/",
    )
    root = _response_xml(fields)
    assert root.get("InResponseTo") is None  # genuinely unsolicited, and validly signed

    refused = http.post(acs_url, data=fields)

    _refused_for_protocol(refused, "acme", world.partner.pk, "saml_no_pending_sign_in", "IdP-initiated")
    assert "IdP initiated SSO rejected" in caplog.text
    _assert_nobody_signed_in(live_server, http)


def test_an_assertion_from_partner_as_idp_is_refused_at_partner_bs_acs(
    live_server, acme_saml, globex_saml, caplog
):
    """Alice's genuine Acme response, delivered to Globex's ACS: Globex's SP trusts only Globex's IdP."""
    build_saml_partner("acme", acme_saml)
    globex = build_saml_partner("globex", globex_saml)
    http = requests.Session()
    acs_url, fields = _alice_response(http, live_server.url)
    assert acs_url.endswith("/accounts/saml/acme/acs/")

    refused = http.post(f"{live_server.url}/accounts/saml/globex/acs/", data=fields)

    _refused_for_protocol(
        refused,
        "globex",
        globex.partner.pk,
        detail=f"received at {live_server.url}/accounts/saml/globex/acs/",
    )
    assert "Error processing SAML ACS response" in caplog.text
    _assert_nobody_signed_in(live_server, http)


def test_partner_bs_idp_answering_partner_as_sign_in_is_refused(live_server, acme_saml, globex_saml, caplog):
    """Globex's IdP (registered with Acme's SP entity id and ACS) answers Acme's own AuthnRequest, for a user
    with Alice's NameID: InResponseTo, audience, destination all match; the issuer and signing key do not."""
    acme = build_saml_partner("acme", acme_saml)
    build_saml_partner("globex", globex_saml)
    http = requests.Session()
    to_acme_idp = begin_saml_sign_in(http, live_server.url, "acme").headers["Location"]
    assert to_acme_idp.startswith(acme_saml.sso_url + "?")
    to_globex_idp = globex_saml.sso_url + to_acme_idp[len(acme_saml.sso_url) :]

    acs_url, fields = sign_in(http, to_globex_idp, ALICE.username, ALICE.password, follow_acs=False)
    assert acs_url == f"{live_server.url}/accounts/saml/acme/acs/"
    root = _response_xml(fields)
    assert root.xpath("saml:Issuer/text()", namespaces=NS) == [globex_saml.entity_id]
    assert root.xpath("saml:Assertion/saml:Subject/saml:NameID/text()", namespaces=NS) == [ALICE.uid]

    refused = http.post(acs_url, data=fields)

    _refused_for_protocol(refused, "acme", acme.partner.pk, detail="Invalid issuer in the Assertion/Response")
    assert f"Invalid issuer in the Assertion/Response (expected {acme_saml.entity_id}" in caplog.text
    _assert_nobody_signed_in(live_server, http)


# --- tampering and signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "forged"),
    [
        pytest.param(b">acme-0001</saml:NameID>", b">acme-0002</saml:NameID>", id="nameid"),
        pytest.param(
            b">engineers</saml:AttributeValue>", b">admins</saml:AttributeValue>", id="groups-attribute"
        ),
        pytest.param(b">alice@acme.example<", b">mallory@acme.example<", id="email-attribute"),
    ],
)
def test_a_tampered_response_is_refused(live_server, acme_saml, caplog, original, forged):
    world = build_saml_partner("acme", acme_saml)
    http = requests.Session()
    acs_url, fields = _alice_response(http, live_server.url)
    xml = base64.b64decode(fields["SAMLResponse"])
    assert xml.count(original) == 1

    refused = http.post(acs_url, data=_with_xml(fields, xml.replace(original, forged)))

    _refused_for_protocol(refused, "acme", world.partner.pk, detail="Signature validation failed")
    assert "Signature validation failed. SAML Response rejected" in caplog.text
    _assert_nobody_signed_in(live_server, http)


@pytest.mark.parametrize(
    ("slug", "complaint"),
    [
        ("unsigned-response", "The Message of the Response is not signed and the SP require it"),
        ("unsigned-assertion", "The Assertion of the Response is not signed and the SP require it"),
        ("unsigned", "The Assertion of the Response is not signed and the SP require it"),
    ],
)
def test_an_unsigned_response_or_assertion_is_refused(live_server, acme_saml, caplog, slug, complaint):
    """Porte requires both the Response and the Assertion signed: an IdP configured to sign only one (or
    neither) is refused, although everything else in its answer is right."""
    world = build_saml_partner(slug, acme_saml, enforce_email_domains=False)
    http = requests.Session()
    acs_url, fields = sign_in(
        http,
        begin_saml_sign_in(http, live_server.url, slug),
        ALICE.username,
        ALICE.password,
        follow_acs=False,
    )
    root = _response_xml(fields)
    signed_response = bool(root.xpath("./*[local-name()='Signature']"))
    signed_assertion = bool(root.xpath("saml:Assertion/*[local-name()='Signature']", namespaces=NS))
    extra = UNSIGNED[slug]
    assert (signed_response, signed_assertion) == (
        extra["saml20.sign.response"],
        extra["saml20.sign.assertion"],
    )

    refused = http.post(acs_url, data=fields)

    _refused_for_protocol(refused, slug, world.partner.pk, detail=complaint)
    assert complaint in caplog.text
    _assert_nobody_signed_in(live_server, http)


def test_a_transient_nameid_is_refused_as_an_identity(live_server, acme_saml):
    """A transient NameID changes at every sign-in, so it cannot be "the same person": refused, and recorded with
    the value it had."""
    world = build_saml_partner("transient", acme_saml, enforce_email_domains=False)
    http = requests.Session()
    acs_url, fields = sign_in(
        http,
        begin_saml_sign_in(http, live_server.url, "transient"),
        ALICE.username,
        ALICE.password,
        follow_acs=False,
    )
    root = _response_xml(fields)
    assert root.xpath("saml:Assertion/saml:Subject/saml:NameID/@Format", namespaces=NS) == [TRANSIENT]
    transient_id = root.xpath("saml:Assertion/saml:Subject/saml:NameID/text()", namespaces=NS)[0]
    assert transient_id != ALICE.uid

    refused = http.post(acs_url, data=fields)

    assert refused.status_code == 403 and REFUSED in refused.text
    assert refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "transient",
            "reason": "transient_nameid",
            "subject": transient_id,
        }
    ]
    _assert_nobody_signed_in(live_server, http)


# --- hostile XML --------------------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE samlp:Response [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"""


def test_a_billion_laughs_response_is_refused_at_once(live_server, acme_saml):
    """The genuine response with a DOCTYPE of nested entities put in front and the largest one referenced in the
    NameID: refused at once (not gigabytes of expansion), recorded. libxml2 (which python3-saml's parser uses, with
    entity resolution off) stops at its entity amplification limit, a syntax error, before python3-saml's own
    DOCTYPE check would refuse it (see the next test for that check)."""
    world = build_saml_partner("acme", acme_saml)
    http = requests.Session()
    acs_url, fields = _alice_response(http, live_server.url)
    xml = base64.b64decode(fields["SAMLResponse"]).replace(b">acme-0001<", b">&lol9;<")
    if xml.startswith(b"<?xml"):
        xml = xml.split(b"?>", 1)[1]
    hostile = _with_xml(fields, BILLION_LAUGHS + xml)

    started = time.monotonic()
    refused = http.post(acs_url, data=hostile, timeout=30)
    elapsed = time.monotonic() - started

    assert elapsed < 5, f"the ACS took {elapsed:.1f} s on an entity bomb"
    assert refused.status_code == 401 and FAILED in refused.text
    assert refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "saml_unsafe_or_malformed_xml",
            "detail": "XMLSyntaxError",
            "subject": "",
        }
    ]
    _assert_nobody_signed_in(live_server, http)


@pytest.mark.parametrize(
    ("xml", "detail"),
    [
        pytest.param(
            b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><samlp:Response '
            b'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&x;</samlp:Response>',
            "DTDForbidden",
            id="external-entity",
        ),
        pytest.param(
            BILLION_LAUGHS + b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&lol2;'
            b"</samlp:Response>",
            "DTDForbidden",
            id="small-entity-expansion",
        ),
        pytest.param(b"<samlp:Response><unclosed></samlp:Response>", "XMLSyntaxError", id="malformed"),
    ],
)
def test_hostile_or_malformed_xml_is_a_recorded_refusal_not_a_server_error(
    live_server, acme_saml, xml, detail
):
    world = build_saml_partner("acme", acme_saml)
    http = requests.Session()

    refused = http.post(
        f"{live_server.url}/accounts/saml/acme/acs/",
        data={"SAMLResponse": base64.b64encode(xml).decode()},
        timeout=30,
    )

    assert refused.status_code == 401 and FAILED in refused.text
    assert refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "saml_unsafe_or_malformed_xml",
            "detail": detail,
            "subject": "",
        }
    ]
    _assert_nobody_signed_in(live_server, http)
