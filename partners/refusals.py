"""Why a federated sign-in failed, as a short reason code plus detail for the audit log.

allauth reports protocol failures as (error, exception, extra_context); left alone, most of them would be recorded
as "unknown". The reason codes are stable (they feed metrics and alerts); the detail says what exactly was wrong.
"""

from __future__ import annotations

from typing import Any

from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django.core.exceptions import PermissionDenied
from requests import RequestException

# Unsafe or malformed SAML XML (portal never sees these as 500s: partners.saml.finish_acs turns them into refusals).
SAML_XML_ERRORS = ("DTDForbidden", "EntitiesForbidden", "NotSupportedError", "XMLSyntaxError")


class OidcRefused(OAuth2Error):
    """A check Porte adds to OpenID Connect failed; `reason` names it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def protocol_refusal(
    error: Any = None, exception: BaseException | None = None, extra_context: dict[str, Any] | None = None
) -> tuple[str, str]:
    """(reason, detail) for an authentication error as allauth reports it."""
    extra = extra_context or {}
    if isinstance(exception, OidcRefused):
        return f"oidc_{exception.reason}", str(exception)
    if exception is not None and type(exception).__name__ in SAML_XML_ERRORS:
        return "saml_unsafe_or_malformed_xml", type(exception).__name__
    if isinstance(exception, RequestException):
        return "idp_unreachable", type(exception).__name__
    if isinstance(exception, OAuth2Error):
        return "oidc_token_rejected", str(exception)[:300]
    if isinstance(exception, PermissionDenied):
        return "permission_denied", str(exception)[:300]
    if exception is not None:
        return f"error:{type(exception).__name__}", str(exception)[:300]
    if extra.get("saml_errors"):
        codes = "_".join(sorted(str(e) for e in extra["saml_errors"]))
        return f"saml_{codes}"[:80], str(extra.get("saml_last_error_reason") or "")[:300]
    if "state_id" in extra:
        # The callback carries no state this browser is waiting for: replayed, expired, or from another browser.
        return "oidc_state_unknown", ""
    if str(error) == "cancelled":
        return "cancelled_at_idp", ""
    if "state" in extra:
        callback = extra.get("callback_view")
        request = getattr(callback, "request", None)
        idp_error = request.GET.get("error", "") if request is not None else ""
        return ("idp_error" if idp_error else "oidc_no_code"), str(idp_error)[:120]
    return "saml_no_pending_sign_in", "a response with no sign-in started from this browser, or IdP-initiated"
