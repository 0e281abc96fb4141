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

from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.saml import views as saml_views
from allauth.socialaccount.providers.saml.provider import SAMLProvider
from allauth.socialaccount.providers.saml.utils import get_app_or_404
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from lxml import etree
from onelogin.saml2.xmlparser import DTDForbidden, EntitiesForbidden, NotSupportedError

from portal.access import public

TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
REPLAY_MARGIN_SECONDS = 300  # python3-saml's accepted clock drift
AUTHN_CONTEXT_KEY = "porte:authn_context"
# What the IdP's Single Logout will name this sign-in by: the NameID and the assertion's SessionIndex.
SAML_SESSION_KEY = "porte:saml_session"


def remember_assertion(provider_id: str, assertion_id: str, not_on_or_after: int | None) -> bool:
    """True the first time an assertion id is seen for this IdP; False for a replay."""
    now = int(datetime.now(UTC).timestamp())
    lifetime = max(60, (not_on_or_after or now + 300) - now + REPLAY_MARGIN_SECONDS)
    return bool(cache.add(f"porte:saml-assertion:{provider_id}:{assertion_id}", 1, timeout=lifetime))


class PorteSamlProvider(SAMLProvider):
    """Replaces allauth's class for the `saml` id (SOCIALACCOUNT_PROVIDERS[...]['provider_class'])."""

    package = "allauth.socialaccount.providers.saml"
    # What sociallogin_from_response found wrong with this response (the provider lives for one request).
    _porte_login: SocialLogin | None = None

    def extract_extra_data(self, data: Any) -> dict[str, Any]:
        extra: dict[str, Any] = dict(super().extract_extra_data(data))
        # MFA evidence: the AuthnContextClassRef(s) the IdP reports for this sign-in.
        extra[AUTHN_CONTEXT_KEY] = list(data.get_last_authn_contexts() or [])
        # Not the uid: a subject attribute, if mapped, is the uid, but a LogoutRequest names the NameID.
        extra[SAML_SESSION_KEY] = {"name_id": data.get_nameid(), "session_index": data.get_session_index()}
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
        self._porte_login = login
        return login

    def unstash_redirect_state(self, request: HttpRequest, state_id: Any) -> Any:
        try:
            return super().unstash_redirect_state(request, state_id)
        except PermissionDenied:
            # The response answers no sign-in pending in this browser: a replay (its state is used up) or one
            # carried over from another browser. allauth raises before pre_social_login would see it: refuse and
            # record it here, with the reason the replay cache found if it found one.
            login = self._porte_login
            reason = getattr(login, "porte_refusal", None) or "saml_response_unsolicited"
            get_adapter(request).refuse_sign_in(
                request,
                provider_id=self.app.provider_id,
                reason=reason,
                subject=str(login.account.uid) if login else "",
                message="Your identity provider's answer could not be accepted. Sign in again.",
            )


# XML a SAMLResponse must not contain (python3-saml refuses DOCTYPEs and entities: XML bombs, XXE), or cannot be
# parsed at all. allauth lets these escape as server errors.
_UNSAFE_OR_MALFORMED_XML = (DTDForbidden, EntitiesForbidden, NotSupportedError, etree.XMLSyntaxError)


@public
def finish_acs(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Drop-in for allauth's `saml_finish_acs` view: hostile or malformed XML is a refused, recorded sign-in."""
    try:
        response: HttpResponse = saml_views.finish_acs(request, organization_slug=organization_slug)
    except _UNSAFE_OR_MALFORMED_XML as exc:
        provider = get_app_or_404(request, organization_slug).get_provider(request)
        return render_authentication_error(request, provider, exception=exc)
    return response
