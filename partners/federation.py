"""How Porte presents a partner IdP to allauth, what the partner must register on their side, and what a
sign-in asserted (claims normalised across OIDC and SAML)."""

from __future__ import annotations

import base64
import textwrap
from dataclasses import dataclass, field
from typing import Any

from allauth.socialaccount.models import SocialApp, SocialLogin
from django.conf import settings
from django.urls import reverse

from partners.models import IdentityProvider
from partners.saml import AUTHN_CONTEXT_KEY
from portal.crypto import decrypt

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
OIDC_SCOPES = ["openid", "email", "profile", "groups"]


# --- what the partner registers (pinned to PORTE_PUBLIC_URL, never the request's Host) -------------------------


def oidc_redirect_uri(idp: IdentityProvider) -> str:
    return settings.PUBLIC_URL + reverse("openid_connect_callback", kwargs={"provider_id": idp.provider_id})


def saml_sp_entity_id(idp: IdentityProvider) -> str:
    return settings.PUBLIC_URL + reverse("saml_metadata", kwargs={"organization_slug": idp.provider_id})


def saml_acs_url(idp: IdentityProvider) -> str:
    return settings.PUBLIC_URL + reverse("saml_acs", kwargs={"organization_slug": idp.provider_id})


def login_path(idp: IdentityProvider) -> str:
    if idp.protocol == IdentityProvider.Protocol.SAML:
        return reverse("saml_login", kwargs={"organization_slug": idp.provider_id})
    return reverse("openid_connect_login", kwargs={"provider_id": idp.provider_id})


def registration_details(idp: IdentityProvider) -> dict[str, str]:
    """What the partner's IdP administrator must configure for Porte."""
    if idp.protocol == IdentityProvider.Protocol.SAML:
        return {
            "SP entity ID": saml_sp_entity_id(idp),
            "ACS URL (HTTP-POST)": saml_acs_url(idp),
            "SP metadata URL": saml_sp_entity_id(idp),
            "NameID format": PERSISTENT,
            "Signing": "sign the response and the assertion (RSA-SHA256)",
        }
    return {
        "Redirect URI": oidc_redirect_uri(idp),
        "Grant type": "authorization_code with PKCE (S256)",
        "Client authentication": "client_secret_basic",
        "Scopes": " ".join(OIDC_SCOPES),
    }


# --- allauth's view of an IdP ---------------------------------------------------------------------------------


def _pem(cert_b64: str) -> str:
    body = "\n".join(textwrap.wrap("".join(cert_b64.split()), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"


def social_app_for(idp: IdentityProvider) -> SocialApp:
    """An unsaved SocialApp built from the IdentityProvider row (the source of truth; the secret stays encrypted
    at rest and is decrypted only here)."""
    if idp.protocol == IdentityProvider.Protocol.SAML:
        mapping: dict[str, str] = {"email": idp.mapping("email"), "name": idp.mapping("name")}
        if idp.mapping("subject"):
            mapping["uid"] = idp.mapping("subject")
        return SocialApp(
            provider="saml",
            provider_id=idp.provider_id,
            client_id=idp.provider_id,
            name=idp.display_name,
            settings={
                "idp": {
                    "entity_id": idp.saml_entity_id,
                    "sso_url": idp.saml_sso_url,
                    "x509cert": _pem(idp.saml_certificates[0]) if idp.saml_certificates else "",
                },
                "sp": {"entity_id": saml_sp_entity_id(idp)},
                "attribute_mapping": mapping,
                "advanced": {
                    "want_assertion_signed": True,
                    "want_message_signed": True,
                    "reject_idp_initiated_sso": True,
                    "reject_deprecated_algorithm": True,
                    "name_id_format": PERSISTENT,
                    "want_attribute_statement": False,
                    "strict": True,
                },
            },
        )
    return SocialApp(
        provider="openid_connect",
        provider_id=idp.provider_id,
        name=idp.display_name,
        client_id=idp.client_id,
        secret=decrypt(idp.client_secret_encrypted),
        settings={
            "server_url": idp.issuer,
            "issuer": idp.issuer,
            "oauth_pkce_enabled": True,
            "token_auth_method": "client_secret_basic",
            "fetch_userinfo": False,
            "uid_field": idp.mapping("subject"),
            "scope": OIDC_SCOPES,
        },
    )


# --- what a sign-in asserted ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assertion:
    subject: str
    email: str
    name: str
    groups: list[str]
    mfa: bool
    # Raw MFA evidence, kept with the session (OIDC amr/acr or SAML AuthnContextClassRef).
    authn_methods: list[str] = field(default_factory=list)
    # Other simple claims/attributes (e.g. a device-posture claim a role may require), kept with the session.
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def claims_summary(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "email": self.email,
            "name": self.name,
            "groups": self.groups,
            "mfa": self.mfa,
            "authn_methods": self.authn_methods,
            # Everything else it asserted, by name: what a claim mapping can be fixed with.
            "claims": self.attributes,
        }


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def assertion_from(idp: IdentityProvider, sociallogin: SocialLogin) -> Assertion:
    data = sociallogin.account.extra_data or {}
    if idp.protocol == IdentityProvider.Protocol.SAML:
        attributes: dict[str, Any] = data

        def first(key: str) -> str:
            values = _as_list(attributes.get(idp.mapping(key))) if idp.mapping(key) else []
            return values[0] if values else ""

        methods = _as_list(attributes.get(AUTHN_CONTEXT_KEY))
        groups = _as_list(attributes.get(idp.mapping("groups")))
        source = attributes
    else:
        claims: dict[str, Any] = {**(data.get("id_token") or {}), **(data.get("userinfo") or {})}

        def first(key: str) -> str:
            values = _as_list(claims.get(idp.mapping(key)))
            return values[0] if values else ""

        methods = _as_list(claims.get("amr")) + _as_list(claims.get("acr"))
        groups = _as_list(claims.get(idp.mapping("groups")))
        source = claims
    mfa_values = set(idp.mfa_values)
    return Assertion(
        subject=str(sociallogin.account.uid),
        email=first("email").strip().lower(),
        name=first("name"),
        groups=sorted({g.strip()[:100] for g in groups if g.strip()})[:200],
        mfa=any(m in mfa_values for m in methods),
        authn_methods=methods[:20],
        attributes=_simple_claims(source, skip={idp.mapping("groups"), "amr", "acr", AUTHN_CONTEXT_KEY}),
    )


def _simple_claims(source: dict[str, Any], *, skip: set[str]) -> dict[str, list[str]]:
    """Short scalar claims (and short lists of them), bounded, for conditions such as device posture."""
    kept: dict[str, list[str]] = {}
    for key, value in source.items():
        if key in skip or not isinstance(key, str) or len(key) > 100:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        if len(values) > 10 or not all(isinstance(v, (str, bool, int, float)) for v in values):
            continue
        kept[key] = [str(v).lower() if isinstance(v, bool) else str(v)[:200] for v in values]
        if len(kept) >= 40:
            break
    return kept


def certificate_pem(cert_b64: str) -> str:
    base64.b64decode("".join(cert_b64.split()), validate=True)
    return _pem(cert_b64)
