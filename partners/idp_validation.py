"""Checking a partner's IdP before Porte trusts it: OIDC discovery documents and SAML metadata.

Everything fetched here comes from an address a staff member typed, so fetching is conservative: https only
(plain http only where PORTE_IDP_ALLOW_HTTP says so, for local test IdPs), no redirects, short timeouts, a size
cap. Every problem becomes an `IdpConfigError` whose message says what is wrong and what to fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import requests
from cryptography import x509
from django.conf import settings
from django.core.exceptions import ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.xmlparser import DTDForbidden, EntitiesForbidden

MAX_DOCUMENT_BYTES = 1_000_000
DISCOVERY_PATH = "/.well-known/openid-configuration"
TIMEOUT_SECONDS = 5
# Asymmetric signatures only: "none" and shared-secret HS* algorithms would let anyone holding the client secret
# (or nobody at all) mint ID tokens.
ALLOWED_ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
CERT_EXPIRY_WARNING = timedelta(days=30)  # keep in step with models.CERTIFICATE_WARNING_DAYS


class IdpConfigError(ValueError):
    """The IdP's configuration cannot be used; the message is meant for the staff member onboarding it."""


# An IdP generates client secrets of 32+ random characters; anything this short or this uniform was typed by hand.
SECRET_MIN_CHARS = 16
SECRET_MIN_DISTINCT = 8


def client_secret_strength(value: str) -> None:
    if len(value) < SECRET_MIN_CHARS or len(set(value)) < SECRET_MIN_DISTINCT:
        raise ValidationError(
            f"This does not look like a client secret your IdP generated (at least {SECRET_MIN_CHARS} characters, "
            f"{SECRET_MIN_DISTINCT} of them different): copy the secret from the IdP's application page."
        )


def check_url(url: str, what: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "https" and parsed.hostname:
        return url
    if parsed.scheme == "http" and parsed.hostname and settings.IDP_ALLOW_HTTP:
        return url
    why = (
        " (PORTE_IDP_ALLOW_HTTP=1 allows plain http for a local test IdP)" if parsed.scheme == "http" else ""
    )
    raise IdpConfigError(f"The {what} must be an https:// address: {url!r}{why}.")


def fetch(url: str, what: str) -> bytes:
    check_url(url, what)
    try:
        with requests.get(url, timeout=TIMEOUT_SECONDS, allow_redirects=False, stream=True) as response:
            if response.is_redirect:
                raise IdpConfigError(f"The {what} at {url} redirects elsewhere; give the final address.")
            if response.status_code != 200:
                raise IdpConfigError(f"The {what} at {url} answered HTTP {response.status_code}.")
            body = response.raw.read(MAX_DOCUMENT_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        raise IdpConfigError(f"Could not reach the {what} at {url} ({type(exc).__name__}).") from None
    if len(body) > MAX_DOCUMENT_BYTES:
        raise IdpConfigError(f"The {what} at {url} is larger than {MAX_DOCUMENT_BYTES // 1000} kB.")
    return bytes(body)


# --- OpenID Connect ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OidcProviderInfo:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str
    id_token_algorithms: list[str]
    claims_supported: list[str] = field(default_factory=list)
    scopes_supported: list[str] = field(default_factory=list)


def oidc_discover(issuer: str) -> OidcProviderInfo:
    """Fetch and validate `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0)."""
    issuer = issuer.rstrip("/").removesuffix(DISCOVERY_PATH).rstrip("/")
    check_url(issuer, "issuer")
    raw = fetch(f"{issuer}{DISCOVERY_PATH}", "discovery document")
    try:
        doc: dict[str, Any] = json.loads(raw)
    except ValueError:
        raise IdpConfigError("The discovery document is not valid JSON.") from None
    if not isinstance(doc, dict):
        raise IdpConfigError("The discovery document is not a JSON object.")
    if doc.get("issuer") != issuer:
        raise IdpConfigError(
            f"The discovery document names the issuer {doc.get('issuer')!r}, not {issuer!r}: "
            "they must match exactly (check the issuer URL, including its path)."
        )
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            raise IdpConfigError(f"The discovery document has no {name}.")
        endpoints[name] = check_url(value, name.replace("_", " "))
    if "code" not in (doc.get("response_types_supported") or []):
        raise IdpConfigError("The IdP does not support the authorization code flow (response type 'code').")
    if "S256" not in (doc.get("code_challenge_methods_supported") or []):
        raise IdpConfigError("The IdP does not advertise PKCE with S256 (code_challenge_methods_supported).")
    algorithms = [
        a for a in doc.get("id_token_signing_alg_values_supported") or [] if a in ALLOWED_ID_TOKEN_ALGORITHMS
    ]
    if not algorithms:
        raise IdpConfigError(
            "The IdP signs ID tokens with none of the accepted algorithms "
            f"({', '.join(ALLOWED_ID_TOKEN_ALGORITHMS)})."
        )
    return OidcProviderInfo(
        issuer=issuer,
        id_token_algorithms=algorithms,
        claims_supported=[str(c) for c in doc.get("claims_supported") or []],
        scopes_supported=[str(s) for s in doc.get("scopes_supported") or []],
        **endpoints,
    )


# --- SAML 2.0 ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamlIdpInfo:
    entity_id: str
    sso_url: str
    certificates: list[str]
    certificate_not_after: datetime
    # Where the IdP takes LogoutResponses ("" if it offers no single logout on the SSO URL's origin).
    slo_url: str = ""

    @property
    def certificate_expires_soon(self) -> bool:
        return self.certificate_not_after - datetime.now(UTC) < CERT_EXPIRY_WARNING


def saml_metadata_parse(xml: bytes | str) -> SamlIdpInfo:
    """Parse and validate IdP metadata: entity id, an SSO endpoint, a signing certificate that is valid now."""
    if isinstance(xml, str):
        xml = xml.encode()
    if len(xml) > MAX_DOCUMENT_BYTES:
        raise IdpConfigError(f"The metadata is larger than {MAX_DOCUMENT_BYTES // 1000} kB.")
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml)
    except (DTDForbidden, EntitiesForbidden):
        raise IdpConfigError(
            "The metadata contains a DOCTYPE or entity declarations, which are refused."
        ) from None
    except Exception as exc:  # python3-saml raises bare Exception/XMLSyntaxError for malformed input
        raise IdpConfigError(f"The metadata is not valid SAML metadata XML ({type(exc).__name__}).") from None
    idp = parsed.get("idp") or {}
    entity_id = idp.get("entityId")
    if not entity_id:
        raise IdpConfigError("The metadata has no IDPSSODescriptor with an entityID.")
    sso_url = (idp.get("singleSignOnService") or {}).get("url")
    if not sso_url:
        raise IdpConfigError("The metadata has no SingleSignOnService with the HTTP-Redirect binding.")
    check_url(sso_url, "single sign-on URL")
    certs = list((idp.get("x509certMulti") or {}).get("signing") or [])
    if idp.get("x509cert"):
        certs.insert(0, idp["x509cert"])
    if not certs:
        raise IdpConfigError("The metadata has no signing certificate: Porte only accepts signed assertions.")
    now = datetime.now(UTC)
    valid: list[tuple[datetime, str]] = []
    problems: list[str] = []
    for cert_b64 in certs:
        try:
            cert = x509.load_der_x509_certificate(_b64decode(cert_b64))
        except ValueError:
            problems.append("one certificate cannot be read")
            continue
        if cert.not_valid_after_utc <= now:
            problems.append(f"a certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        elif cert.not_valid_before_utc > now:
            problems.append(f"a certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
        else:
            valid.append((cert.not_valid_after_utc, cert_b64))
    if not valid:
        raise IdpConfigError("The metadata has no usable signing certificate: " + "; ".join(problems) + ".")
    valid.sort(reverse=True)
    return SamlIdpInfo(
        entity_id=entity_id,
        sso_url=sso_url,
        certificates=[c for _, c in valid],
        certificate_not_after=valid[0][0],
        slo_url=_logout_url(idp.get("singleLogoutService") or {}, sso_url),
    )


def _logout_url(service: dict[str, Any], sso_url: str) -> str:
    """The IdP's SingleLogoutService for responses, kept only on the origin of its SSO URL: metadata cannot send
    people off to another site after they sign out."""
    url = str(service.get("responseUrl") or service.get("url") or "")
    if not url:
        return ""
    try:
        check_url(url, "single logout URL")
    except IdpConfigError:
        return ""
    logout, sso = urlparse(url), urlparse(sso_url)
    return url if (logout.scheme, logout.netloc) == (sso.scheme, sso.netloc) else ""


def _b64decode(value: str) -> bytes:
    import base64

    return base64.b64decode("".join(value.split()), validate=True)
