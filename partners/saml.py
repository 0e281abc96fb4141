"""SAML 2.0 sign-in, hardened on top of allauth's `saml` provider (python3-saml).

allauth/python3-saml already: require a valid signature, check audience, recipient, destination and time, refuse
DOCTYPEs, refuse IdP-initiated SSO (no InResponseTo) and accept each SP-initiated InResponseTo once. Porte's
per-IdP settings require both the response and the assertion to be signed and pin the SP entity id; this module
adds an assertion-ID replay cache kept until the assertion's NotOnOrAfter, and refuses transient NameIDs as
identities (they change at every sign-in, so they cannot be "the same person").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.saml.provider import SAMLProvider
from django.core.cache import cache
from django.http import HttpRequest

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
REPLAY_MARGIN_SECONDS = 300  # python3-saml's accepted clock drift
AUTHN_CONTEXT_KEY = "porte:authn_context"


def remember_assertion(provider_id: str, assertion_id: str, not_on_or_after: int | None) -> bool:
    """True the first time an assertion id is seen for this IdP; False for a replay."""
    now = int(datetime.now(UTC).timestamp())
    lifetime = max(60, (not_on_or_after or now + 300) - now + REPLAY_MARGIN_SECONDS)
    return bool(cache.add(f"porte:saml-assertion:{provider_id}:{assertion_id}", 1, timeout=lifetime))


class PorteSamlProvider(SAMLProvider):
    """Replaces allauth's class for the `saml` id (SOCIALACCOUNT_PROVIDERS[...]['provider_class'])."""

    package = "allauth.socialaccount.providers.saml"

    def extract_extra_data(self, data: Any) -> dict[str, Any]:
        extra: dict[str, Any] = dict(super().extract_extra_data(data))
        # MFA evidence: the AuthnContextClassRef(s) the IdP reports for this sign-in.
        extra[AUTHN_CONTEXT_KEY] = list(data.get_last_authn_contexts() or [])
        return extra

    def sociallogin_from_response(self, request: HttpRequest, response: Any) -> SocialLogin:
        login: SocialLogin = super().sociallogin_from_response(request, response)
        refusal = None
        if (
            "uid" not in self.app.settings.get("attribute_mapping", {})
            and response.get_nameid_format() == TRANSIENT
        ):
            refusal = "transient_nameid"
        elif not remember_assertion(
            self.app.provider_id,
            response.get_last_assertion_id(),
            response.get_last_assertion_not_on_or_after(),
        ):
            refusal = "assertion_replayed"
        # Refused in the adapter's pre_social_login, where the refusal is recorded and shown.
        login.porte_refusal = refusal
        return login
