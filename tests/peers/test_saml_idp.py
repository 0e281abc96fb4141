"""The local SAML IdP peer (SimpleSAMLphp) speaks standard SAML 2.0 Web SSO: it publishes metadata
with its signing certificate, accepts an SP-initiated AuthnRequest (HTTP-Redirect binding) built by
python3-saml (the library allauth's SAML provider uses), and answers through the HTTP-POST binding
with a Response in which both the Response and the Assertion are signed with that certificate,
carrying a persistent NameID (the user's uid), audience = SP entity id, Recipient = ACS URL, and
the email/displayName/groups attributes. Nothing listens at the SP's ACS: the flow stops at the
auto-submitting form that a browser would post there."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from .saml_idp import SamlIdp, SamlLoginRefused, SamlUser, free_port, sign_in

ALICE = SamlUser(
    username="alice",
    password="alice-pw",
    uid="acme-0001",
    email="alice@acme.example",
    name="Alice Martin",
    groups=["engineers", "aws-admins"],
)
SP_PORT = free_port()
SP_ENTITY_ID = f"http://127.0.0.1:{SP_PORT}/sp"
ACS_URL = f"http://127.0.0.1:{SP_PORT}/acs"
NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
}
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"


@pytest.fixture(scope="module")
def idp() -> Iterator[SamlIdp]:
    with SamlIdp(
        [ALICE], [{"entity_id": SP_ENTITY_ID, "acs_url": ACS_URL}], title="Acme Corp sign-in"
    ) as running:
        yield running


def _pem_body(pem: str) -> str:
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)


def _sp(idp: SamlIdp, post_data: dict[str, str] | None = None) -> OneLogin_Saml2_Auth:
    """A python3-saml SP at SP_ENTITY_ID, strict, wanting signed messages and assertions."""
    settings = {
        "strict": True,
        "sp": {
            "entityId": SP_ENTITY_ID,
            "assertionConsumerService": {
                "url": ACS_URL,
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
            },
            "NameIDFormat": PERSISTENT,
        },
        "idp": {
            "entityId": idp.entity_id,
            "singleSignOnService": {
                "url": idp.sso_url,
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            },
            "x509cert": _pem_body(idp.certificate_pem),
        },
        "security": {"wantAssertionsSigned": True, "wantMessagesSigned": True},
    }
    request = {
        "https": "off",
        "http_host": f"127.0.0.1:{SP_PORT}",
        "script_name": "/acs",
        "get_data": {},
        "post_data": post_data or {},
    }
    return OneLogin_Saml2_Auth(request, old_settings=settings)


def _response_xml(fields: dict[str, str]) -> Any:
    return etree.fromstring(base64.b64decode(fields["SAMLResponse"]))


def test_metadata_names_entity_id_and_signing_certificate(idp: SamlIdp) -> None:
    root = etree.fromstring(idp.metadata_xml().encode())
    assert root.tag == f"{{{NS['md']}}}EntityDescriptor"
    assert root.get("entityID") == idp.entity_id == idp.metadata_url
    certs = root.xpath(
        "md:IDPSSODescriptor/md:KeyDescriptor[@use='signing']//ds:X509Certificate/text()", namespaces=NS
    )
    assert [c.strip() for c in certs] == [_pem_body(idp.certificate_pem)]
    sso = root.xpath("md:IDPSSODescriptor/md:SingleSignOnService/@Location", namespaces=NS)
    assert idp.sso_url in sso


def test_sp_initiated_sign_in_yields_signed_response_and_assertion(idp: SamlIdp) -> None:
    sp = _sp(idp)
    login_url = sp.login(return_to="/after-login")
    request_id = sp.get_last_request_id()
    assert login_url.startswith(idp.sso_url + "?SAMLRequest=")

    acs_url, fields = sign_in(requests.Session(), login_url, "alice", "alice-pw", follow_acs=False)

    assert acs_url == ACS_URL
    assert fields["RelayState"] == "/after-login"
    root = _response_xml(fields)
    assert root.tag == f"{{{NS['samlp']}}}Response"
    assert root.get("InResponseTo") == request_id
    assert root.get("Destination") == ACS_URL
    assert root.xpath("saml:Issuer/text()", namespaces=NS) == [idp.entity_id]
    assert root.xpath("samlp:Status/samlp:StatusCode/@Value", namespaces=NS) == [
        "urn:oasis:names:tc:SAML:2.0:status:Success"
    ]
    assert len(root.xpath("ds:Signature", namespaces=NS)) == 1
    [assertion] = root.xpath("saml:Assertion", namespaces=NS)
    assert len(assertion.xpath("ds:Signature", namespaces=NS)) == 1

    [name_id] = assertion.xpath("saml:Subject/saml:NameID", namespaces=NS)
    assert name_id.get("Format") == PERSISTENT
    assert name_id.text == ALICE.uid
    [confirmation] = assertion.xpath("saml:Subject/saml:SubjectConfirmation", namespaces=NS)
    assert confirmation.get("Method") == "urn:oasis:names:tc:SAML:2.0:cm:bearer"
    [data] = confirmation.xpath("saml:SubjectConfirmationData", namespaces=NS)
    assert data.get("Recipient") == ACS_URL
    assert data.get("InResponseTo") == request_id
    assert assertion.xpath(
        "saml:Conditions/saml:AudienceRestriction/saml:Audience/text()", namespaces=NS
    ) == [SP_ENTITY_ID]

    attributes = {
        a.get("Name"): (a.get("NameFormat"), a.xpath("saml:AttributeValue/text()", namespaces=NS))
        for a in assertion.xpath("saml:AttributeStatement/saml:Attribute", namespaces=NS)
    }
    assert attributes["email"] == (BASIC, [ALICE.email])
    assert attributes["displayName"] == (BASIC, [ALICE.name])
    assert attributes["uid"] == (BASIC, [ALICE.uid])
    assert attributes["groups"] == (BASIC, ALICE.groups)

    # Both signatures verify against the IdP's certificate (xmlsec, through python3-saml) ...
    xml = base64.b64decode(fields["SAMLResponse"])
    assert OneLogin_Saml2_Utils.validate_sign(xml, cert=idp.certificate_pem, raise_exceptions=True)
    assert OneLogin_Saml2_Utils.validate_sign(
        xml,
        cert=idp.certificate_pem,
        xpath=OneLogin_Saml2_Utils.ASSERTION_SIGNATURE_XPATH,
        raise_exceptions=True,
    )
    # ... and a strict python3-saml SP, as allauth configures one, accepts the whole Response.
    sp = _sp(idp, post_data=fields)
    sp.process_response(request_id=request_id)
    assert sp.get_errors() == [], sp.get_last_error_reason()
    assert sp.is_authenticated()
    assert sp.get_nameid() == ALICE.uid
    assert sp.get_nameid_format() == PERSISTENT
    assert sp.get_attributes()["groups"] == ALICE.groups


def test_signature_verification_catches_tampering(idp: SamlIdp) -> None:
    """Proves the check above is real: the same verification fails once the NameID is changed."""
    _, fields = idp.idp_initiated_response(requests.Session(), SP_ENTITY_ID, "alice", "alice-pw")
    xml = base64.b64decode(fields["SAMLResponse"])
    tampered = xml.replace(f">{ALICE.uid}</saml:NameID>".encode(), b">acme-0002</saml:NameID>")
    assert tampered != xml
    assert OneLogin_Saml2_Utils.validate_sign(
        xml, cert=idp.certificate_pem, xpath=OneLogin_Saml2_Utils.ASSERTION_SIGNATURE_XPATH
    )
    assert not OneLogin_Saml2_Utils.validate_sign(
        tampered, cert=idp.certificate_pem, xpath=OneLogin_Saml2_Utils.ASSERTION_SIGNATURE_XPATH
    )


def test_idp_initiated_response_is_unsolicited(idp: SamlIdp) -> None:
    acs_url, fields = idp.idp_initiated_response(
        requests.Session(), SP_ENTITY_ID, "alice", "alice-pw", relay_state="/x"
    )
    assert acs_url == ACS_URL
    assert fields["RelayState"] == "/x"
    root = _response_xml(fields)
    assert root.get("InResponseTo") is None
    assert root.xpath("saml:Assertion/saml:Subject/saml:NameID/text()", namespaces=NS) == [ALICE.uid]


def test_wrong_password_yields_no_saml_response(idp: SamlIdp) -> None:
    sp = _sp(idp)
    with pytest.raises(SamlLoginRefused) as refused:
        sign_in(requests.Session(), sp.login(), "alice", "not-alice-pw", follow_acs=False)
    page = refused.value.response
    assert page.url.startswith(idp.base_url)
    assert "SAMLResponse" not in page.text
    assert 'type="password"' in page.text

    with pytest.raises(SamlLoginRefused):
        idp.idp_initiated_response(requests.Session(), SP_ENTITY_ID, "mallory", "alice-pw")


def test_two_idps_on_one_host_keep_separate_sessions(idp: SamlIdp) -> None:
    """Cookies are per host, not per port: each IdP names its cookies after its port."""
    session = requests.Session()
    idp.idp_initiated_response(session, SP_ENTITY_ID, "alice", "alice-pw")
    bob = SamlUser("bob", "bob-pw", uid="beta-0001", email="bob@beta.example", name="Bob", groups=[])
    with SamlIdp([bob], [{"entity_id": SP_ENTITY_ID, "acs_url": ACS_URL}]) as other:
        _, fields = other.idp_initiated_response(session, SP_ENTITY_ID, "bob", "bob-pw")
        assert _response_xml(fields).xpath("//saml:NameID/text()", namespaces=NS) == [bob.uid]
    # The first IdP's session survived: it answers at once, without a login form.
    page = session.get(f"{idp.sso_url}?spentityid={SP_ENTITY_ID}")
    assert "SAMLResponse" in page.text
    assert 'type="password"' not in page.text
