"""Logout that starts at the partner's IdP: OpenID Connect Back-Channel Logout 1.0, and SAML 2.0 Single Logout.

When a person signs in through their IdP, Porte notes their session under what the IdP will name it by
(FederatedSession: the OIDC subject and `sid`, or the SAML NameID and SessionIndex). When they sign out at the IdP,
or the IdP ends their session, Porte ends the sessions the IdP names at once (their API tokens are not sessions
and stay), in whichever browser they are:
- OIDC: the IdP POSTs a logout token to `/accounts/oidc/<provider_id>/backchannel-logout/`; Porte verifies it
  like an ID token.
- SAML: the IdP sends a LogoutRequest through the browser to `/accounts/saml/<slug>/sls/` (see `saml_single_logout`
  below); the browser need not carry Porte's cookie, which a SameSite=Lax cookie often is not.
A logout that comes while a sign-in of the same IdP session (its `sid` or SessionIndex) is still completing ends
that sign-in as well: the logout marks the session id before it looks for Porte's sessions, and a sign-in looks for
the mark after noting its session, so one of the two sees the other.

The token is refused unless all of these hold (OIDC Back-Channel Logout 1.0 §2.6): signed by a key of the IdP's
JWKS with an allowed algorithm, `typ` (if any) `logout+jwt`, `iss` the onboarded issuer, `aud` Porte's client id,
`iat` within the last LOGOUT_TOKEN_MAX_AGE seconds, `exp` (if any) not passed, an `events` object holding the
back-channel logout event, no `nonce`, a `sub` or a `sid`, and a `jti` not seen before. The audit names the
check that failed; the IdP is only told the token was refused.

A LogoutRequest is refused unless it comes with the HTTP-Redirect binding (the one Porte's SP metadata offers),
signed by the IdP (python3-saml checks the signature over the query string, then the issuer, destination,
expiry and schema: Porte's SAML settings want messages signed), issued within the last LOGOUT_TOKEN_MAX_AGE
seconds, and with an ID not seen before. An unsigned LogoutRequest could not grant anything, but anyone who knows
a person's NameID could end their sessions with one."""

from __future__ import annotations

import binascii
import hashlib
import logging
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import jwt
from allauth.socialaccount.providers.saml.utils import (
    build_saml_config,
    get_app_or_404,
    prepare_django_request,
)
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.settings import validate_url
from onelogin.saml2.utils import OneLogin_Saml2_Utils
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML
from onelogin.saml2.xmlparser import DTDForbidden, EntitiesForbidden, NotSupportedError
from requests import RequestException

from partners import idp_metadata, idp_validation
from partners.models import FederatedSession, IdentityProvider
from partners.saml import SAML_SESSION_KEY
from partners.selectors import identity_provider_by_provider_id, identity_provider_in_request
from portal.access import public
from portal.audit import audit_record
from portal.models import User
from portal.responses import bad_request

log = logging.getLogger(__name__)

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_MAX_AGE = 300
CLOCK_SKEW = 30
MAX_TOKEN_BYTES = 16 * 1024
IDP_LOGOUT_URL_SECONDS = 3600
# How long an IdP session id the IdP logged out is remembered: far longer than a sign-in takes to complete.
LOGGED_OUT_SID_SECONDS = 3600


class LogoutRefused(idp_metadata.TokenRefused):
    """A logout token or LogoutRequest that does not hold; `check` names what failed (for the audit)."""


# --- the session index ------------------------------------------------------------------------------------------


def federated_session_record(
    *, request: HttpRequest, identity_provider: IdentityProvider, subject: str, sid: str, user: Any
) -> None:
    """Note this browser's new session under the IdP's names for it, in one statement (a sign-in's cost counts;
    partners.tasks.federated_sessions_prune forgets rows past a session's life). The session is saved first: a
    sign-in's new key names a row only once saved (portal.sessions), and the index must not name a key before
    its row exists."""
    request.session.save()
    key = request.session.session_key
    if not key:
        return
    # bulk_create(update_conflicts=True) would wrap its one statement in a transaction: two more round trips.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO partners_federatedsession"
            " (identity_provider_id, subject, sid, session_key, user_id, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (session_key) DO UPDATE SET"
            " identity_provider_id = EXCLUDED.identity_provider_id, subject = EXCLUDED.subject,"
            " sid = EXCLUDED.sid, user_id = EXCLUDED.user_id, created_at = EXCLUDED.created_at",
            [identity_provider.pk, subject[:255], sid[:255], key, user.pk, timezone.now()],
        )
    # A logout of this IdP session that came while this sign-in was completing: it marks the sid before it looks
    # for sessions, and this looks for the mark after noting the session, so one of the two always sees the other.
    if sid and cache.get(_logged_out(identity_provider, sid)) is not None:
        with transaction.atomic():
            FederatedSession.objects.filter(session_key=key).delete()
            audit_record(
                action="session.idp_logout",
                obj=user,
                partner_id=identity_provider.partner_id,
                data={"how": "during_sign_in", "sessions_ended": 1, "by_sid": True},
            )
        request.session.flush()


def signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """allauth's user_logged_in: a sign-in through a partner's IdP is noted with its OIDC subject and `sid`, or
    its SAML NameID and SessionIndex (partners.saml keeps them with the account's extra data)."""
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is None:
        return
    idp = identity_provider_in_request(request, sociallogin.account.provider)
    if idp is None:
        return
    extra = sociallogin.account.extra_data or {}
    if idp.protocol == IdentityProvider.Protocol.SAML:
        saml = extra.get(SAML_SESSION_KEY) or {}
        subject, sid = saml.get("name_id"), saml.get("session_index")
    else:
        id_token = extra.get("id_token") or {}
        subject = sociallogin.account.uid
        sid = id_token.get("sid") if isinstance(id_token, dict) else None
    if not isinstance(subject, str) or not subject:
        return
    federated_session_record(
        request=request,
        identity_provider=idp,
        subject=subject,
        sid=sid if isinstance(sid, str) else "",
        user=user,
    )


@transaction.atomic
def federated_sessions_end(
    *, identity_provider: IdentityProvider, subject: str | None, sid: str | None, how: str
) -> int:
    """End the Porte sessions the IdP's logout names: by `sid` when it gives one (and the subject, if also
    given, must match), else every session of the subject. Returns how many ended. A sid is remembered for a
    while (`federated_session_record`: a sign-in of it still completing ends too)."""
    if sid:
        cache.set(_logged_out(identity_provider, sid), 1, timeout=LOGGED_OUT_SID_SECONDS)
    rows = FederatedSession.objects.filter(identity_provider=identity_provider)
    rows = rows.filter(sid=sid) if sid else rows.filter(subject=subject)
    if sid and subject:
        rows = rows.filter(subject=subject)
    found = list(rows.select_for_update().values_list("pk", "session_key", "user_id"))
    keys = [key for _pk, key, _user in found]
    Session.objects.filter(session_key__in=keys).delete()
    FederatedSession.objects.filter(pk__in=[pk for pk, _key, _user in found]).delete()
    # One event per person whose sessions ended (the IdP's, when it named no session Porte knows).
    ended: dict[int | None, int] = dict(Counter(user_id for _pk, _key, user_id in found)) or {None: 0}
    people = User.objects.in_bulk([user_id for user_id in ended if user_id is not None])
    for user_id, count in sorted(ended.items(), key=lambda item: item[0] or 0):
        audit_record(
            action="session.idp_logout",
            obj=people.get(user_id) if user_id is not None else identity_provider,
            partner_id=identity_provider.partner_id,
            data={"how": how, "sessions_ended": count, "by_sid": bool(sid)},
        )
    return len(keys)


def _logged_out(identity_provider: IdentityProvider, sid: str) -> str:
    return f"porte:idp-logout:{identity_provider.pk}:{hashlib.sha256(sid.encode()).hexdigest()[:32]}"


@transaction.atomic
def logout_refuse(*, identity_provider: IdentityProvider | None, provider_id: str, check: str) -> None:
    audit_record(
        action="idp.logout_refused",
        obj=identity_provider,
        partner_id=identity_provider.partner_id if identity_provider is not None else None,
        data={"provider_id": provider_id[:64], "check": check},
    )


# --- the logout token ------------------------------------------------------------------------------------------


def _claims(identity_provider: IdentityProvider, token: str) -> dict[str, Any]:
    try:
        typ = jwt.get_unverified_header(token).get("typ")
    except jwt.InvalidTokenError:
        raise LogoutRefused("malformed") from None
    if typ is not None and str(typ).lower() not in ("logout+jwt", "application/logout+jwt"):
        raise LogoutRefused("typ")
    claims = idp_metadata.verified_token(
        token,
        issuer=identity_provider.issuer,
        audience=identity_provider.client_id,
        leeway=CLOCK_SKEW,
        options={"require": ["iss", "aud", "iat", "jti"]},
    )
    iat = claims["iat"]
    if (
        not isinstance(iat, int | float)
        or not time.time() - LOGOUT_TOKEN_MAX_AGE <= iat <= time.time() + CLOCK_SKEW
    ):
        raise LogoutRefused("iat")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise LogoutRefused("events")
    if "nonce" in claims:
        raise LogoutRefused("nonce")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not (isinstance(sub, str) and sub) and not (isinstance(sid, str) and sid):
        raise LogoutRefused("sub_or_sid")
    if (sub is not None and not isinstance(sub, str)) or (sid is not None and not isinstance(sid, str)):
        raise LogoutRefused("sub_or_sid")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise LogoutRefused("jti")
    # Replays: each jti once, for as long as a token with it could be accepted.
    if not cache.add(
        f"porte:logout-jti:{identity_provider.pk}:{jti}", 1, LOGOUT_TOKEN_MAX_AGE + 2 * CLOCK_SKEW
    ):
        raise LogoutRefused("replayed")
    return claims


def _refused() -> JsonResponse:
    response = JsonResponse(
        {"error": "invalid_request", "error_description": "The logout token was refused."}, status=400
    )
    response["Cache-Control"] = "no-store"
    return response


@public
@csrf_exempt
@require_POST
def backchannel_logout(request: HttpRequest, provider_id: str) -> HttpResponse:
    """The IdP's back-channel: a logout token in a form POST. No transaction is held while the IdP's keys are
    fetched (they are usually in the cache)."""
    idp = identity_provider_by_provider_id(provider_id)
    token = request.POST.get("logout_token", "")
    if idp is None or idp.protocol != IdentityProvider.Protocol.OIDC or not idp.is_enabled:
        logout_refuse(identity_provider=idp, provider_id=provider_id, check="identity_provider")
        return _refused()
    if not token or len(token) > MAX_TOKEN_BYTES:
        logout_refuse(identity_provider=idp, provider_id=provider_id, check="logout_token")
        return _refused()
    try:
        claims = _claims(idp, token)
    except idp_metadata.TokenRefused as refused:
        logout_refuse(identity_provider=idp, provider_id=provider_id, check=refused.check)
        return _refused()
    except RequestException:
        log.warning("Back-channel logout for %s: the IdP's keys could not be fetched.", provider_id)
        unavailable = JsonResponse({"error": "temporarily_unavailable"}, status=503)
        unavailable["Retry-After"] = "30"
        return unavailable
    federated_sessions_end(
        identity_provider=idp, subject=claims.get("sub"), sid=claims.get("sid"), how="oidc_backchannel"
    )
    done = HttpResponse(status=200)
    done["Cache-Control"] = "no-store"
    return done


# --- SAML Single Logout ----------------------------------------------------------------------------------------

# A LogoutRequest that cannot even be read (python3-saml lets these escape).
_UNREADABLE = (
    binascii.Error,
    UnicodeError,
    etree.XMLSyntaxError,
    DTDForbidden,
    EntitiesForbidden,
    NotSupportedError,
    OneLogin_Saml2_Error,
    OneLogin_Saml2_ValidationError,
)
_SAML_REFUSED = (
    "Your identity provider's sign-out could not be accepted, so Porte signed nobody out. "
    "To end your Porte session, use Sign out in Porte."
)


def _idp_logout_url(identity_provider: IdentityProvider) -> str:
    """Where the IdP takes its LogoutResponse: its SingleLogoutService, kept from its metadata at onboarding; for
    an IdP onboarded before Porte kept it, read from its metadata URL and cached. Only an address on the origin
    of its SSO URL is used, so that metadata cannot send people off to another site. "" when unknown."""
    if identity_provider.saml_slo_url:
        return identity_provider.saml_slo_url
    metadata_url = identity_provider.saml_metadata_url
    if not metadata_url:
        return ""
    key = f"porte:saml-logout-url:{identity_provider.pk}:{hashlib.sha256(metadata_url.encode()).hexdigest()}"
    url = cache.get(key)
    if url is None:
        try:
            parsed = OneLogin_Saml2_IdPMetadataParser.parse(
                idp_validation.fetch(metadata_url, "metadata"), entity_id=identity_provider.saml_entity_id
            )
            service = parsed["idp"]["singleLogoutService"]
            url = idp_validation.check_url(str(service.get("responseUrl") or service["url"]), "logout URL")
        # Out of reach, or not metadata python3-saml can read (it raises bare Exceptions too).
        except Exception:
            url = ""
        if not validate_url(url):
            log.warning(
                "SAML logout for %s: no usable logout endpoint in the IdP's metadata.", identity_provider
            )
            url = ""
        # Without one, the metadata is read again after a minute: it may only have been out of reach.
        cache.set(key, url, IDP_LOGOUT_URL_SECONDS if url else 60)
    sso = urlsplit(identity_provider.saml_sso_url)
    logout = urlsplit(url)
    return url if (logout.scheme, logout.netloc) == (sso.scheme, sso.netloc) else ""


def _saml_auth(
    request: HttpRequest, identity_provider: IdentityProvider, response_url: str
) -> OneLogin_Saml2_Auth:
    """python3-saml as allauth sets it up for this IdP, plus where the LogoutResponse goes. The signature is
    checked over the query string as the IdP sent it: re-encoding the parameters (python3-saml's default) need
    not give back the bytes the IdP signed."""
    provider = get_app_or_404(request, identity_provider.provider_id).get_provider(request)
    config = build_saml_config(request, provider.app.settings, identity_provider.provider_id)
    config["idp"]["singleLogoutService"] = {"url": response_url}
    data = prepare_django_request(request)
    data.update(query_string=request.META.get("QUERY_STRING", ""), validate_signature_from_qs=True)
    return OneLogin_Saml2_Auth(data, config)


def _logout_request(
    auth: OneLogin_Saml2_Auth, identity_provider: IdentityProvider
) -> tuple[str, str, list[str]]:
    """Validates the LogoutRequest in the query string and builds the LogoutResponse: (where the response goes,
    the NameID, the SessionIndexes). Raises LogoutRefused naming the failed check."""
    try:
        response_url = auth.process_slo(keep_local_session=True)
    except _UNREADABLE:
        raise LogoutRefused("malformed") from None
    errors = auth.get_errors()
    if errors:
        log.warning(
            "SAML LogoutRequest for %s refused: %s: %s",
            identity_provider,
            ", ".join(errors),
            auth.get_last_error_reason() or "",
        )
        raise LogoutRefused("signature" if "invalid_logout_request_signature" in errors else "logout_request")
    xml = auth.get_last_request_xml()
    try:
        name_id = OneLogin_Saml2_Logout_Request.get_nameid(xml)
        session_indexes = OneLogin_Saml2_Logout_Request.get_session_indexes(xml)
        issued = OneLogin_Saml2_Utils.parse_SAML_to_time(OneLogin_Saml2_XML.to_etree(xml).get("IssueInstant"))
    except Exception:  # python3-saml raises a bare Exception for a time it cannot read
        raise LogoutRefused("malformed") from None
    if not time.time() - LOGOUT_TOKEN_MAX_AGE <= issued <= time.time() + CLOCK_SKEW:
        raise LogoutRefused("issue_instant")
    request_id = auth.get_last_message_id()
    # Replays: each LogoutRequest once, for as long as it could be accepted.
    if not request_id or not cache.add(
        f"porte:saml-logout:{identity_provider.pk}:{request_id}", 1, LOGOUT_TOKEN_MAX_AGE + 2 * CLOCK_SKEW
    ):
        raise LogoutRefused("replayed")
    return str(response_url), name_id or "", [index for index in session_indexes if index]


@public
@csrf_exempt
def saml_single_logout(request: HttpRequest, organization_slug: str) -> HttpResponse:
    """Replaces allauth's `saml_sls`, which signs out only the browser that brings the LogoutRequest, and only if
    it carries Porte's cookie. The IdP's LogoutRequest ends the sessions it names (its NameID, and its
    SessionIndexes if any), and the browser goes back to the IdP with the LogoutResponse. Porte sends no
    LogoutRequest of its own, so it expects no LogoutResponse."""
    idp = identity_provider_by_provider_id(organization_slug)
    if idp is None or idp.protocol != IdentityProvider.Protocol.SAML or not idp.is_enabled:
        logout_refuse(identity_provider=idp, provider_id=organization_slug, check="identity_provider")
        return bad_request(request, _SAML_REFUSED)
    if request.method != "GET" or "SAMLRequest" not in request.GET:
        logout_refuse(identity_provider=idp, provider_id=organization_slug, check="binding")
        return bad_request(request, _SAML_REFUSED)
    idp_logout_url = _idp_logout_url(idp)
    # python3-saml always builds a LogoutResponse; with no address to send it to, it goes nowhere (below).
    auth = _saml_auth(request, idp, idp_logout_url or idp.saml_sso_url)
    try:
        response_url, name_id, session_indexes = _logout_request(auth, idp)
    except LogoutRefused as refused:
        logout_refuse(identity_provider=idp, provider_id=organization_slug, check=refused.check)
        return bad_request(request, _SAML_REFUSED)
    for sid in session_indexes or [""]:
        federated_sessions_end(identity_provider=idp, subject=name_id, sid=sid, how="saml_slo")
    if request.session.session_key and not request.session.exists(request.session.session_key):
        # This browser's own session was one of them: forget it here, rather than save it back.
        request.session.flush()
    if not idp_logout_url:
        log.warning("SAML logout for %s: the IdP gets no LogoutResponse (no logout endpoint known).", idp)
        return HttpResponseRedirect(reverse("sign_in"))
    return HttpResponseRedirect(response_url)
