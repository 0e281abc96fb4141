"""The gate: one place that decides, before any view runs, whether this request may reach it.

1. Standing (portal.access): a signed-in person who lost it — account disabled, membership ended, partner
   suspended or offboarded, IdP disabled — has their session ended here, on their next request, with the reason
   audited once. A partner person's session must also come from their partner's IdP, and a staff session must
   have used its second factor (allauth records how the session signed in); anything else ends too.
2. Audience: every view declares who may reach it (`portal.access.audience`); views of the libraries Porte uses
   (allauth, the admin, the REST API) are listed below. A view with no audience answers 404 to everyone, so a new
   URL is closed until someone decides who it is for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.account.internal.flows.login import record_authentication
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import ResolverMatch
from rest_framework.views import APIView

from portal.access import (
    AUDIENCE_ATTRIBUTE,
    MFA_NOT_SET_UP,
    REFUSAL_MESSAGES,
    Actor,
    Audience,
    actor_of,
    invitation_marker,
)
from portal.audit import audit_record

log = logging.getLogger(__name__)

# Views of the libraries Porte uses, by URL name. allauth pages for local accounts are for staff (and the login and
# password-reset pages for visitors); partner people have no local credentials, so those pages do not exist for
# them. Everything allauth offers that Porte does not use is closed.
LIBRARY_AUDIENCES: dict[str, str] = {
    # local accounts (staff)
    "account_login": Audience.PUBLIC,
    "account_logout": Audience.PUBLIC,
    "account_inactive": Audience.PUBLIC,
    "account_signup": Audience.CLOSED,
    "account_reauthenticate": Audience.STAFF_ACCOUNT,
    "account_request_reauthentication_code": Audience.CLOSED,
    "account_confirm_reauthentication_code": Audience.CLOSED,
    "account_confirm_login_code": Audience.CLOSED,
    "account_email": Audience.STAFF_ACCOUNT,
    "account_email_verification_sent": Audience.CLOSED,
    "account_confirm_email": Audience.CLOSED,
    "account_change_password": Audience.STAFF_ACCOUNT,
    "account_set_password": Audience.STAFF_ACCOUNT,
    "account_reset_password": Audience.STAFF_OR_ANONYMOUS,
    "account_reset_password_done": Audience.STAFF_OR_ANONYMOUS,
    "account_reset_password_from_key": Audience.STAFF_OR_ANONYMOUS,
    "account_reset_password_from_key_done": Audience.STAFF_OR_ANONYMOUS,
    # second factor (staff); the code is asked for mid-login, before the person is signed in
    "mfa_authenticate": Audience.PUBLIC,
    "mfa_index": Audience.STAFF_ACCOUNT,
    "mfa_reauthenticate": Audience.STAFF_ACCOUNT,
    "mfa_activate_totp": Audience.STAFF_ACCOUNT,
    "mfa_deactivate_totp": Audience.STAFF_ACCOUNT,
    "mfa_view_recovery_codes": Audience.STAFF_ACCOUNT,
    "mfa_generate_recovery_codes": Audience.STAFF_ACCOUNT,
    "mfa_download_recovery_codes": Audience.STAFF_ACCOUNT,
    # federation: the partner IdPs' protocol endpoints (the adapters decide who gets in)
    "openid_connect_login": Audience.PUBLIC,
    "openid_connect_callback": Audience.PUBLIC,
    "saml_login": Audience.PUBLIC,
    "saml_acs": Audience.PUBLIC,
    "saml_finish_acs": Audience.PUBLIC,
    "saml_sls": Audience.PUBLIC,
    "saml_metadata": Audience.PUBLIC,
    "socialaccount_login_cancelled": Audience.PUBLIC,
    "socialaccount_login_error": Audience.PUBLIC,
    # identities are (IdP, subject), created at first sign-in: no sign-up form, no linking of other sign-ins
    "socialaccount_signup": Audience.CLOSED,
    "socialaccount_connections": Audience.CLOSED,
}
# Pages a staff member without a second factor may still reach: to set one up, or to leave.
_BEFORE_SECOND_FACTOR = {Audience.PUBLIC, Audience.STAFF_ACCOUNT}


def audience_of(view: Callable[..., Any], match: ResolverMatch | None) -> str:
    declared = getattr(view, AUDIENCE_ATTRIBUTE, None)
    if declared is not None:
        return str(declared)
    view_class = getattr(view, "cls", None)
    if isinstance(view_class, type) and issubclass(view_class, APIView):
        return Audience.API
    if match is not None and match.app_name == "admin":
        return Audience.STAFF
    if match is not None and match.url_name in LIBRARY_AUDIENCES:
        return LIBRARY_AUDIENCES[match.url_name]
    return Audience.CLOSED


def _session_refusal(request: HttpRequest, actor: Actor) -> str | None:
    """How this session signed in must match who the person is (allauth records each step of a sign-in)."""
    records = get_authentication_records(request, request.user)
    if actor.is_staff:
        return None if any(r.get("method") == "mfa" for r in records) else "mfa_not_satisfied"
    if actor.identity_provider is None:
        return "not_signed_in_by_idp"  # a partner's pipeline: it never holds a session
    provider_id = actor.identity_provider.provider_id
    signed_in_by_idp = any(
        r.get("method") == "socialaccount" and r.get("provider") == provider_id for r in records
    )
    return None if signed_in_by_idp else "not_signed_in_by_idp"


def second_factor_added(
    sender: Any, request: HttpRequest, user: Any, authenticator: Any, **kwargs: Any
) -> None:
    """Setting up TOTP proves the factor (allauth checks a code first): the session counts as having used it, so
    a staff member who just set it up carries on instead of being signed out."""
    record_authentication(request, user, "mfa", id=authenticator.pk, type=authenticator.type)


def _end_session(request: HttpRequest, reason: str) -> None:
    user: Any = request.user
    membership = getattr(user, "membership", None)
    # Concurrent requests of the same session race here: the first one records it.
    if cache.add(f"porte:session-ended:{request.session.session_key}", 1, timeout=600):
        with transaction.atomic():
            audit_record(
                action="session.ended",
                obj=user,
                partner_id=membership.partner_id if membership is not None else None,
                data={"reason": reason, "path": request.path[:200]},
            )
    logout(request)
    messages.info(request, REFUSAL_MESSAGES.get(reason, "Your session ended.") + " Please sign in again.")


class Gate:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        audience = audience_of(view, request.resolver_match)
        if request.user.is_authenticated:
            actor = actor_of(request.user)
            refusal = actor.refusal or _session_refusal(request, actor)
            if refusal == MFA_NOT_SET_UP:
                return (
                    None
                    if audience in _BEFORE_SECOND_FACTOR
                    else self._second_factor_first(request, audience)
                )
            if refusal is not None:
                _end_session(request, refusal)
        return self._decide(request, audience, actor_of(request.user))

    @staticmethod
    def _second_factor_first(request: HttpRequest, audience: str) -> HttpResponse:
        message = REFUSAL_MESSAGES[MFA_NOT_SET_UP]
        if audience == Audience.API:
            return JsonResponse({"detail": message}, status=403)
        messages.info(request, message)
        return redirect("mfa_activate_totp")

    @staticmethod
    def _decide(request: HttpRequest, audience: str, actor: Actor) -> HttpResponse | None:
        if audience == Audience.CLOSED:
            raise Http404
        if audience in (Audience.PUBLIC, Audience.API, Audience.DIRECTORY):
            return None
        if audience == Audience.INVITED:
            # Whoever holds the opened invitation, signed in or not; nobody else finds these pages.
            if invitation_marker(request) is None:
                raise Http404
            return None
        if not actor.in_standing:
            if audience == Audience.STAFF_OR_ANONYMOUS:
                return None
            return redirect_to_login(request.get_full_path())
        allowed = {
            Audience.SIGNED_IN: True,
            Audience.PARTNER: actor.is_partner_member,
            Audience.PARTNER_ADMIN: actor.is_partner_admin,
            Audience.STAFF: actor.is_staff,
            Audience.STAFF_ACCOUNT: actor.is_staff,
            Audience.STAFF_OR_ANONYMOUS: actor.is_staff,
        }.get(audience, False)
        if not allowed:
            # Pages that are not for this person do not exist for them.
            raise Http404
        return None
