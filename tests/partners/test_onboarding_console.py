"""The staff onboarding console (/staff/partners/): creating a partner, adding its IdP (OIDC discovery and SAML
metadata validated against real IdPs: oidc-provider, SimpleSAMLphp), what the partner must register, the test
sign-in, and rotating the IdP's secret or certificate — with nothing saved half-way when something is wrong.

Staff are signed in with `force_login` (a staff account with TOTP, as the MFA middleware requires) except for the
test sign-ins, which go through a live server and the real two-step staff login.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from partners import idp_validation, services
from partners.models import IdentityProvider, Partner
from portal.crypto import decrypt
from portal.models import AuditEvent, User
from tests.fixtures.domain import STAFF_TOTP_SECRET, build_saml_partner, make_staff, saml_sp, sign_in_as
from tests.fixtures.peers import ALICE
from tests.helpers import (
    begin_oidc_sign_in,
    begin_saml_sign_in,
    csrf_headers,
    refusals,
    self_signed_certificate_b64,
    staff_sign_in,
)
from tests.peers.oidc_idp import OidcIdp, OidcIdpError
from tests.peers.oidc_idp import sign_in as oidc_sign_in
from tests.peers.saml_idp import SamlIdp, SamlUser, free_port
from tests.peers.saml_idp import sign_in as saml_sign_in

SAML_ALICE = SamlUser(
    "alice",
    "alice-pw",
    uid="acme-0001",
    email="alice@acme.example",
    name="Alice Martin",
    groups=["engineers"],
)
MD = "urn:oasis:names:tc:SAML:2.0:metadata"


@pytest.fixture
def sam(db) -> User:  # type: ignore[no-untyped-def]
    cache.clear()  # TOTP codes are single-use per user (kept in the cache)
    return make_staff("sam")


@pytest.fixture
def console(sam: User) -> Client:
    client = Client()
    sign_in_as(client, sam)
    return client


def _page(response) -> str:  # type: ignore[no-untyped-def]
    return response.content.decode()


def _partner(console: Client, slug: str = "acme", **fields: str) -> Partner:
    data = {
        "name": "Acme Corp",
        "slug": slug,
        "domains": f"{slug}.example",
        "sponsor": str(User.objects.get(username="sam").pk),
        "aws_region": "eu-west-1",
        "enforce_email_domains": "on",
        **fields,
    }
    response = console.post("/staff/partners/new/", data)
    assert response.status_code == 302 and response["Location"] == f"/staff/partners/{slug}/", _page(response)
    return Partner.objects.get(slug=slug)


def _no_idp_saved() -> None:
    assert not IdentityProvider.objects.exists()
    assert not AuditEvent.objects.filter(action="idp.created").exists()


# --- creating a partner --------------------------------------------------------------------------------------------


def test_staff_create_a_partner(console, sam):
    partner = _partner(console, domains="acme.example, ACME-corp.example  acme.example")

    assert partner.status == Partner.Status.ONBOARDING and partner.sponsor == sam
    assert sorted(partner.domains.values_list("domain", flat=True)) == ["acme-corp.example", "acme.example"]
    event = AuditEvent.objects.get(action="partner.created")
    assert event.actor_id == sam.pk and event.data == {
        "slug": "acme",
        "domains": ["acme-corp.example", "acme.example"],
        "sensitive": False,
    }
    detail = console.get("/staff/partners/acme/")
    assert detail.status_code == 200
    assert "Acme Corp created. Next: add its identity provider, or invite its IT contact to." in _page(detail)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"domains": "acme.example not_a_domain"}, "Not a domain name: not_a_domain."),
        ({"domains": "acme"}, "Not a domain name: acme."),
        ({"domains": "https://acme.example"}, "Not a domain name: https://acme.example."),
        ({"slug": "Acme Corp"}, "Enter a valid “slug”"),
    ],
)
def test_a_bad_partner_is_refused_with_what_is_wrong(console, fields, message):
    data = {"name": "Acme Corp", "slug": "acme", "domains": "acme.example", "aws_region": "eu-west-1"}
    data["sponsor"] = str(User.objects.get(username="sam").pk)
    response = console.post("/staff/partners/new/", {**data, **fields})

    assert response.status_code == 400 and message in _page(response)
    assert not Partner.objects.exists() and not AuditEvent.objects.filter(action="partner.created").exists()


def test_a_duplicate_slug_or_a_taken_domain_is_refused(console):
    _partner(console)

    for fields, message in [
        ({"slug": "acme", "domains": "other.example"}, "A partner with this slug exists already."),
        (
            {"slug": "acme2", "domains": "ACME.example"},
            "Already registered to another partner: acme.example.",
        ),
    ]:
        response = console.post(
            "/staff/partners/new/",
            {"name": "Other", "sponsor": str(User.objects.get(username="sam").pk), "aws_region": "eu-west-1"}
            | fields,
        )
        assert response.status_code == 400 and message in _page(response)
    assert list(Partner.objects.values_list("slug", flat=True)) == ["acme"]


# --- an OpenID Connect IdP -----------------------------------------------------------------------------------------


def _oidc_form(issuer: str, secret: str = "acme-client-secret") -> dict[str, str]:
    return {
        "display_name": "Acme sign-in",
        "issuer": issuer,
        "client_id": "porte-acme",
        "client_secret": secret,
    }


def test_an_unreachable_issuer_is_refused(console):
    _partner(console)
    issuer = f"http://127.0.0.1:{free_port()}"

    response = console.post("/staff/partners/acme/idp/oidc/", _oidc_form(issuer))

    page = _page(response)
    assert response.status_code == 400
    assert f"Could not reach the discovery document at {issuer}/.well-known/openid-configuration" in page
    assert "acme-client-secret" not in page
    _no_idp_saved()


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        (
            "http://idp.acme.example",
            "The issuer must be an https:// address: &#x27;http://idp.acme.example&#x27; (PORTE_IDP_ALLOW_HTTP",
        ),
        ("ftp://127.0.0.1/", "The issuer must be an https:// address"),
    ],
)
def test_an_issuer_that_is_not_https_is_refused_without_being_fetched(console, settings, issuer, message):
    settings.IDP_ALLOW_HTTP = False  # as in production
    _partner(console)
    response = console.post("/staff/partners/acme/idp/oidc/", _oidc_form(issuer))
    assert response.status_code == 400 and message in _page(response)
    _no_idp_saved()


@pytest.mark.django_db(transaction=True)
def test_an_issuer_that_differs_from_the_discovery_document_is_refused(console, acme_idp):
    """oidc-provider's discovery document names http://127.0.0.1:<port>; the staff member typed the same IdP as
    http://localhost:<port>. The issuer is what ID tokens are checked against, so it must match exactly."""
    _partner(console)
    typed = acme_idp.issuer.replace("127.0.0.1", "localhost")

    response = console.post("/staff/partners/acme/idp/oidc/", _oidc_form(typed))

    page = _page(response)
    assert response.status_code == 400
    assert (
        f"The discovery document names the issuer &#x27;{acme_idp.issuer}&#x27;, not &#x27;{typed}&#x27;"
        in page
    )
    assert "they must match exactly" in page
    _no_idp_saved()

    # An issuer with a path that oidc-provider does not serve: its discovery document is not there at all.
    response = console.post("/staff/partners/acme/idp/oidc/", _oidc_form(acme_idp.issuer + "/tenant-a"))
    assert response.status_code == 400 and "answered HTTP 404" in _page(response)
    _no_idp_saved()


def test_a_pasted_discovery_url_is_saved_as_its_issuer(console, acme_idp):
    """Staff often copy the discovery document's URL: it is read once, and the issuer it names is stored (sign-ins
    would otherwise ask for <issuer>/.well-known/openid-configuration/.well-known/openid-configuration)."""
    _partner(console)

    response = console.post(
        "/staff/partners/acme/idp/oidc/", _oidc_form(acme_idp.issuer + "/.well-known/openid-configuration")
    )

    assert response.status_code == 302
    assert IdentityProvider.objects.get().issuer == acme_idp.issuer


@pytest.mark.django_db(transaction=True)
def test_a_valid_oidc_idp_is_saved_with_its_secret_encrypted(console, sam, acme_idp, settings):
    settings.PUBLIC_URL = "https://porte.example.com"
    _partner(console)

    response = console.post("/staff/partners/acme/idp/oidc/", _oidc_form(acme_idp.issuer + "/"))

    assert response.status_code == 302 and response["Location"] == "/staff/partners/acme/"
    idp = IdentityProvider.objects.get()
    assert (idp.protocol, idp.provider_id, idp.issuer, idp.client_id) == (
        "oidc",
        "acme",
        acme_idp.issuer,
        "porte-acme",
    )
    assert idp.client_secret_encrypted and "acme-client-secret" not in idp.client_secret_encrypted
    assert decrypt(idp.client_secret_encrypted) == "acme-client-secret"
    assert AuditEvent.objects.get(action="idp.created").data == {
        "provider_id": "acme",
        "issuer": acme_idp.issuer,
        "client_id": "porte-acme",
    }
    assert not AuditEvent.objects.filter(data__icontains="acme-client-secret").exists()
    for url in ("/staff/partners/acme/", "/staff/partners/acme/idp/oidc/", "/staff/partners/"):
        page = _page(console.get(url))
        assert "acme-client-secret" not in page and idp.client_secret_encrypted not in page
    detail = _page(console.get("/staff/partners/acme/"))
    assert "stored encrypted" in detail
    assert "https://porte.example.com/accounts/oidc/acme/login/callback/" in detail


# --- a SAML IdP ------------------------------------------------------------------------------------------------------


def _certificate(not_before: dt.datetime, not_after: dt.datetime) -> str:
    return self_signed_certificate_b64("idp.acme.example", not_before, not_after)


def _metadata(cert_b64: str, entity_id: str = "https://idp.acme.example/saml") -> bytes:
    return f"""<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="{MD}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity_id}">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data>
      <ds:X509Certificate>{cert_b64}</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
                            Location="https://idp.acme.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>""".encode()


NOW = dt.datetime.now(dt.UTC)
VALID_CERT = _certificate(NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365))


def _upload(console: Client, xml: bytes):  # type: ignore[no-untyped-def]
    return console.post(
        "/staff/partners/acme/idp/saml/",
        {"display_name": "Acme SAML", "metadata_file": SimpleUploadedFile("metadata.xml", xml, "text/xml")},
    )


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        pytest.param(b"<md:EntityDescriptor", "The metadata is not valid SAML metadata XML", id="malformed"),
        pytest.param(b"not xml at all", "The metadata is not valid SAML metadata XML", id="not-xml"),
        pytest.param(
            b'<!DOCTYPE md [<!ENTITY x "y">]>' + _metadata(VALID_CERT).split(b"?>", 1)[1],
            "The metadata contains a DOCTYPE or entity declarations, which are refused.",
            id="doctype",
        ),
        pytest.param(
            _metadata(_certificate(NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=35))),
            "The metadata has no usable signing certificate: a certificate expired on "
            f"{(NOW - dt.timedelta(days=35)):%Y-%m-%d}.",
            id="expired-certificate",
        ),
        pytest.param(
            _metadata(_certificate(NOW + dt.timedelta(days=3), NOW + dt.timedelta(days=365))),
            "a certificate is not valid before",
            id="future-certificate",
        ),
        pytest.param(
            _metadata(VALID_CERT)
            .replace(b"<md:KeyDescriptor", b"<!-- --><md:Unknown")
            .replace(b"</md:KeyDescriptor>", b"</md:Unknown>"),
            "The metadata has no signing certificate: Porte only accepts signed assertions.",
            id="no-certificate",
        ),
        pytest.param(
            _metadata(VALID_CERT).replace(b"https://idp.acme.example/sso", b"http://idp.acme.example/sso"),
            "The single sign-on URL must be an https:// address",
            id="plain-http-sso",
        ),
    ],
)
def test_bad_saml_metadata_is_refused_with_what_is_wrong(console, settings, xml, message):
    settings.IDP_ALLOW_HTTP = False  # as in production
    _partner(console)

    response = _upload(console, xml)

    assert response.status_code == 400 and message in _page(response).replace("&#x27;", "'")
    _no_idp_saved()


def test_neither_or_both_metadata_sources_are_refused(console):
    _partner(console)
    assert "Give either the metadata URL or the metadata file." in _page(
        console.post("/staff/partners/acme/idp/saml/", {"display_name": "Acme SAML"})
    )
    response = console.post(
        "/staff/partners/acme/idp/saml/",
        {
            "display_name": "Acme SAML",
            "metadata_url": "https://idp.acme.example/metadata",
            "metadata_file": SimpleUploadedFile("m.xml", _metadata(VALID_CERT)),
        },
    )
    assert response.status_code == 400 and "Give either the metadata URL or the metadata file." in _page(
        response
    )
    _no_idp_saved()


def test_valid_uploaded_metadata_is_saved(console):
    _partner(console)

    response = _upload(console, _metadata(VALID_CERT))

    assert response.status_code == 302
    idp = IdentityProvider.objects.get()
    assert (idp.protocol, idp.saml_entity_id, idp.saml_sso_url) == (
        "saml",
        "https://idp.acme.example/saml",
        "https://idp.acme.example/sso",
    )
    assert idp.saml_certificates == [VALID_CERT] and idp.saml_metadata_url == ""


# --- what the partner must register -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["oidc", "saml"])
def test_what_the_partner_registers_is_built_from_public_url_not_the_request_host(
    console, settings, protocol
):
    settings.PUBLIC_URL = "https://porte.example.com"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "evil.example"]
    partner = _partner(console)
    if protocol == "oidc":
        services.identity_provider_create_oidc(
            partner=partner,
            provider_id="acme",
            display_name="Acme",
            issuer="https://idp.acme.example",
            client_id="porte-acme",
            client_secret="s3cret",
        )
        expected = ["https://porte.example.com/accounts/oidc/acme/login/callback/"]
    else:
        services.identity_provider_create_saml(
            partner=partner,
            provider_id="acme",
            display_name="Acme",
            metadata=idp_validation.saml_metadata_parse(_metadata(VALID_CERT)),
        )
        expected = [
            "https://porte.example.com/accounts/saml/acme/metadata/",
            "https://porte.example.com/accounts/saml/acme/acs/",
        ]

    response = console.get("/staff/partners/acme/", HTTP_HOST="evil.example")

    page = _page(response)
    assert response.status_code == 200 and "What Acme Corp must register in their IdP" in page
    for url in expected:
        assert f"<code>{url}</code>" in page
    assert "evil.example" not in page


@pytest.mark.django_db(transaction=True)
def test_the_sp_metadata_pins_the_entity_id_to_public_url(console, settings):
    """Porte's SP metadata (what a partner's IdP may read instead of typing the details) names the SP by
    PUBLIC_URL, and is served on that origin only: another Host is sent there."""
    settings.PUBLIC_URL = "https://porte.example.com"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "evil.example", "porte.example.com"]
    partner = _partner(console)
    services.identity_provider_create_saml(
        partner=partner,
        provider_id="acme",
        display_name="Acme",
        metadata=idp_validation.saml_metadata_parse(_metadata(VALID_CERT)),
    )

    elsewhere = Client().get("/accounts/saml/acme/metadata/", HTTP_HOST="evil.example")
    assert elsewhere.status_code == 302
    assert elsewhere["Location"] == "https://porte.example.com/accounts/saml/acme/metadata/"

    response = Client().get("/accounts/saml/acme/metadata/", HTTP_HOST="porte.example.com", secure=True)

    assert response.status_code == 200
    assert b'entityID="https://porte.example.com/accounts/saml/acme/metadata/"' in response.content


# --- test sign-in, activation ---------------------------------------------------------------------------------------


def _staff_browser(live_server) -> requests.Session:  # type: ignore[no-untyped-def]
    return staff_sign_in(live_server.url, "sam", "sam-Staff-pw-1", STAFF_TOTP_SECRET)


def _start_test_sign_in(live_server, http: requests.Session, slug: str) -> str:  # type: ignore[no-untyped-def]
    """POST the console's "Test sign-in" button; return the login path its page continues to."""
    http.get(f"{live_server.url}/staff/partners/{slug}/").raise_for_status()
    page = http.post(f"{live_server.url}/staff/partners/{slug}/idp-test/", headers=csrf_headers(http))
    assert page.status_code == 200 and "no partner user is created" in page.text
    continue_to = re.search(r'<form method="post" action="([^"]+)">.*?Continue to', page.text, re.DOTALL)
    assert continue_to, page.text
    return continue_to.group(1)


@pytest.mark.django_db(transaction=True)
def test_onboarding_an_oidc_partner_end_to_end_with_a_test_sign_in(live_server, settings, sam, acme_idp):
    """Create the partner and its IdP in the console, test the IdP as staff (Alice's real account at the IdP):
    the console shows what the IdP asserted, records the verification, and creates no partner user. Then
    activate, and Alice can sign in for real."""
    settings.PUBLIC_URL = live_server.url
    console = Client()
    sign_in_as(console, sam)
    _partner(console)
    assert console.post("/staff/partners/acme/idp/oidc/", _oidc_form(acme_idp.issuer)).status_code == 302
    http = _staff_browser(live_server)

    login_path = _start_test_sign_in(live_server, http, "acme")
    assert login_path == "/accounts/oidc/acme/login/"
    to_idp = http.post(
        f"{live_server.url}{login_path}",
        data={"csrfmiddlewaretoken": http.cookies["csrftoken"]},
        allow_redirects=False,
    )
    result = oidc_sign_in(http, to_idp, ALICE.username, ALICE.password)

    assert result.status_code == 200 and result.url == f"{live_server.url}/staff/idp/acme/test-result/"
    page = result.text
    assert "The test sign-in passed." in page
    for shown in (
        "<code>acme-0001</code>",
        "<dd>alice@acme.example</dd>",
        "<dd>Alice Martin</dd>",
        "<dd>engineers</dd>",
        "yes (pwd, otp, urn:porte:mfa)",
    ):
        assert shown in page
    assert User.objects.count() == 1 and not SocialAccount.objects.exists()  # only Sam
    idp = IdentityProvider.objects.get()
    assert idp.verified_at is not None
    event = AuditEvent.objects.get(action="idp.test_sign_in")
    assert event.actor_id == sam.pk
    assert event.data == {"claims": ["authn_methods", "email", "groups", "mfa", "name", "subject"]}
    assert refusals() == []
    # Sam is still Sam (a staff session, not a partner user's).
    assert http.get(f"{live_server.url}/staff/partners/acme/").status_code == 200

    detail = _page(console.get("/staff/partners/acme/"))
    assert "✔ Test sign-in passed with the current configuration" in detail and "○ Active" in detail
    # This test gives Acme no AWS account: activation is refused until staff record why they go ahead anyway.
    refused = console.post("/staff/partners/acme/activate/")
    assert refused.status_code == 400
    assert "Its dedicated AWS account is not provisioned." in _page(refused)
    assert Partner.objects.get().status == Partner.Status.ONBOARDING
    activated = console.post(
        "/staff/partners/acme/activate/", {"exception_reason": "Pilot: Acme's account is adopted next week"}
    )
    assert activated.status_code == 302
    assert Partner.objects.get().status == Partner.Status.ACTIVE
    exception = AuditEvent.objects.get(action="partner.activation_exception")
    assert (
        exception.actor_id == sam.pk
        and exception.data["reason"] == "Pilot: Acme's account is adopted next week"
    )
    alice_http = requests.Session()
    landed = oidc_sign_in(
        alice_http, begin_oidc_sign_in(alice_http, live_server.url, "acme"), ALICE.username, ALICE.password
    )
    assert landed.status_code == 200 and "Acme Corp · AWS access" in landed.text


@pytest.mark.django_db(transaction=True)
def test_onboarding_a_saml_partner_from_its_metadata_url_with_a_test_sign_in(live_server, settings, sam):
    settings.PUBLIC_URL = live_server.url
    with SamlIdp([SAML_ALICE], [saml_sp(live_server.url, "acme")]) as idp:
        console = Client()
        sign_in_as(console, sam)
        _partner(console)
        response = console.post(
            "/staff/partners/acme/idp/saml/", {"display_name": "Acme SAML", "metadata_url": idp.metadata_url}
        )
        assert response.status_code == 302, _page(response)
        saved = IdentityProvider.objects.get()
        assert (saved.saml_entity_id, saved.saml_sso_url, saved.saml_metadata_url) == (
            idp.entity_id,
            idp.sso_url,
            idp.metadata_url,
        )
        pem_body = "".join(line for line in idp.certificate_pem.splitlines() if "-----" not in line)
        assert saved.saml_certificates == [pem_body]
        detail = _page(console.get("/staff/partners/acme/"))
        assert f"<code>{live_server.url}/accounts/saml/acme/metadata/</code>" in detail
        assert f"<code>{live_server.url}/accounts/saml/acme/acs/</code>" in detail

        http = _staff_browser(live_server)
        login_path = _start_test_sign_in(live_server, http, "acme")
        assert login_path == "/accounts/saml/acme/login/"
        to_idp = http.post(
            f"{live_server.url}{login_path}",
            data={"csrfmiddlewaretoken": http.cookies["csrftoken"]},
            allow_redirects=False,
        )
        result = saml_sign_in(http, to_idp, SAML_ALICE.username, SAML_ALICE.password)

    assert result.status_code == 200 and result.url == f"{live_server.url}/staff/idp/acme/test-result/"
    assert "<code>acme-0001</code>" in result.text and "<dd>alice@acme.example</dd>" in result.text
    assert User.objects.count() == 1 and not SocialAccount.objects.exists()
    assert IdentityProvider.objects.get().verified_at is not None


# --- rotation ---------------------------------------------------------------------------------------------------------


def _restart_oidc(idp: OidcIdp, clients: list[dict[str, object]]) -> OidcIdp:
    """The partner's IdP, restarted on the same address (same issuer) with a new client configuration."""
    idp.stop()
    for attempt in range(3):
        try:
            return OidcIdp(clients, [ALICE], title="Acme Corp sign-in", port=idp.port).start()
        except OidcIdpError as exc:
            if "did not print" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


@pytest.fixture
def rotating_idp(live_server) -> Iterator[list[OidcIdp]]:  # type: ignore[no-untyped-def]
    client = {
        "client_id": "porte-acme",
        "client_secret": "old-secret",
        "redirect_uris": [f"{live_server.url}/accounts/oidc/acme/login/callback/"],
    }
    running = [_restart_oidc(OidcIdp([client], [ALICE]), [client])]
    yield running
    running[-1].stop()


def _alice_signs_in(live_server) -> requests.Response:  # type: ignore[no-untyped-def]
    http = requests.Session()
    return oidc_sign_in(
        http, begin_oidc_sign_in(http, live_server.url, "acme"), ALICE.username, ALICE.password
    )


@pytest.mark.django_db(transaction=True)
def test_rotating_the_oidc_client_secret_takes_effect_at_the_next_sign_in(
    live_server, settings, sam, rotating_idp
):
    """The partner rotates the secret at its IdP: sign-ins fail (and are recorded) until staff enter the new one in
    the console; the very next sign-in then works, without restarting Porte."""
    from tests.fixtures.domain import build_partner

    settings.PUBLIC_URL = live_server.url
    idp = rotating_idp[0]
    world = build_partner("acme", issuer=idp.issuer, client_secret="old-secret", provision=False)
    assert _alice_signs_in(live_server).status_code == 200

    client = {
        "client_id": "porte-acme",
        "client_secret": "new-secret-0123456789",
        "redirect_uris": [f"{live_server.url}/accounts/oidc/acme/login/callback/"],
    }
    rotating_idp.append(_restart_oidc(rotating_idp.pop(), [client]))
    failed = _alice_signs_in(live_server)
    assert failed.status_code == 401
    assert refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "oidc_token_rejected",
            "detail": 'Error retrieving access token: b\'{"error":"invalid_client",'
            '"error_description":"client authentication failed"}\'',
            "subject": "",
        }
    ]

    console = Client()
    sign_in_as(console, sam)
    form = console.get("/staff/partners/acme/idp/oidc/")
    assert (
        form.status_code == 200
        and "Replacing the client secret takes effect at the next sign-in" in _page(form)
    )
    assert console.post("/staff/partners/acme/idp/oidc/", {"client_secret": ""}).status_code == 400
    rotated = console.post("/staff/partners/acme/idp/oidc/", {"client_secret": "new-secret-0123456789"})
    assert rotated.status_code == 302

    landed = _alice_signs_in(live_server)
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert decrypt(IdentityProvider.objects.get().client_secret_encrypted) == "new-secret-0123456789"
    assert AuditEvent.objects.get(action="idp.secret_rotated").data == {}
    assert User.objects.filter(socialaccount__provider="acme").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_saml_certificate_rollover_is_loaded_from_new_metadata(live_server, settings, sam):
    """The partner's IdP gets a new signing key (SimpleSAMLphp restarted on the same address: same entity id, new
    certificate). Sign-ins are refused until staff load the new metadata; metadata for another entity id is refused
    (it would be another IdP), and nothing changes."""
    settings.PUBLIC_URL = live_server.url
    sps = [saml_sp(live_server.url, "acme")]
    console = Client()
    sign_in_as(console, sam)

    def alice_signs_in() -> requests.Response:
        http = requests.Session()
        return saml_sign_in(
            http, begin_saml_sign_in(http, live_server.url, "acme"), SAML_ALICE.username, SAML_ALICE.password
        )

    with SamlIdp([SAML_ALICE], sps) as old_idp:
        world = build_saml_partner("acme", old_idp)
        port, old_cert = old_idp.port, IdentityProvider.objects.get().saml_certificates
        assert alice_signs_in().status_code == 200
    with SamlIdp([SAML_ALICE], sps, port=free_port()) as other_idp:
        other = console.post(
            "/staff/partners/acme/idp/saml/", {"display_name": "Acme", "metadata_url": other_idp.metadata_url}
        )
    assert other.status_code == 400
    assert f"The metadata is for &#x27;{other_idp.entity_id}&#x27;, not this IdP" in _page(other)
    assert IdentityProvider.objects.get().saml_certificates == old_cert
    assert not AuditEvent.objects.filter(action="idp.metadata_updated").exists()

    with SamlIdp([SAML_ALICE], sps, port=port) as new_idp:
        assert new_idp.entity_id == old_idp.entity_id
        refused = alice_signs_in()
        assert refused.status_code == 401
        assert refusals()[-1]["reason"] == "saml_invalid_response"

        form = console.get("/staff/partners/acme/idp/saml/")
        assert "New metadata for the same entity id" in _page(form)
        updated = console.post(
            "/staff/partners/acme/idp/saml/", {"display_name": "Acme", "metadata_url": new_idp.metadata_url}
        )
        assert updated.status_code == 302
        saved = IdentityProvider.objects.get()
        assert saved.saml_certificates != old_cert and saved.partner == world.partner
        assert AuditEvent.objects.get(action="idp.metadata_updated").actor_id == sam.pk

        landed = alice_signs_in()
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert User.objects.filter(socialaccount__provider="acme").count() == 1
