"""Logout that starts at the partner's IdP: OpenID Connect Back-Channel Logout 1.0.

When a person signs in through their IdP, Porte notes their session under what the IdP will name it by (the
subject and the IdP's `sid`: FederatedSession). When they sign out at the IdP, or the IdP ends their session, it
POSTs a logout token to `/accounts/oidc/<provider_id>/backchannel-logout/`; Porte verifies it like an ID token
and ends the sessions it names at once (their API tokens are not sessions and stay).

The token is refused unless all of these hold (OIDC Back-Channel Logout 1.0 §2.6): signed by a key of the IdP's
JWKS with an allowed algorithm, `typ` (if any) `logout+jwt`, `iss` the onboarded issuer, `aud` Porte's client id,
`iat` within the last LOGOUT_TOKEN_MAX_AGE seconds, `exp` (if any) not passed, an `events` object holding the
back-channel logout event, no `nonce`, a `sub` or a `sid`, and a `jti` not seen before. The audit names the
check that failed; the IdP is only told the token was refused."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import jwt
from allauth.socialaccount.models import SocialAccount
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from requests import RequestException

from partners import idp_metadata
from partners.idp_validation import ALLOWED_ID_TOKEN_ALGORITHMS
from partners.models import FederatedSession, IdentityProvider
from partners.selectors import identity_provider_by_provider_id
from portal.access import public
from portal.audit import audit_record

log = logging.getLogger(__name__)

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_MAX_AGE = 300
CLOCK_SKEW = 30
MAX_TOKEN_BYTES = 16 * 1024


class LogoutRefused(Exception):
    """A logout token that does not hold; `check` names what failed (for the audit)."""

    def __init__(self, check: str) -> None:
        super().__init__(check)
        self.check = check


# --- the session index ------------------------------------------------------------------------------------------


def federated_session_record(
    *, request: HttpRequest, identity_provider: IdentityProvider, subject: str, sid: str
) -> None:
    """Note this browser's new session under the IdP's names for it. Rows past the longest session life go."""
    key = request.session.session_key
    if not key:
        return
    oldest = timezone.now() - timedelta(seconds=settings.SESSION_ABSOLUTE_SECONDS)
    FederatedSession.objects.filter(created_at__lt=oldest).delete()
    FederatedSession.objects.update_or_create(
        session_key=key,
        defaults={"identity_provider": identity_provider, "subject": subject[:255], "sid": sid[:255]},
    )


def signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    """allauth's user_logged_in: a sign-in through a partner's OIDC IdP is noted with its subject and `sid`."""
    sociallogin = kwargs.get("sociallogin")
    if sociallogin is None:
        return
    idp = identity_provider_by_provider_id(sociallogin.account.provider)
    if idp is None or idp.protocol != IdentityProvider.Protocol.OIDC:
        return
    id_token = (sociallogin.account.extra_data or {}).get("id_token") or {}
    sid = id_token.get("sid") if isinstance(id_token, dict) else None
    federated_session_record(
        request=request,
        identity_provider=idp,
        subject=sociallogin.account.uid,
        sid=sid if isinstance(sid, str) else "",
    )


@transaction.atomic
def federated_sessions_end(
    *, identity_provider: IdentityProvider, subject: str | None, sid: str | None, how: str
) -> int:
    """End the Porte sessions the IdP's logout names: by `sid` when it gives one (and the subject, if also
    given, must match), else every session of the subject. Returns how many ended."""
    rows = FederatedSession.objects.filter(identity_provider=identity_provider)
    rows = rows.filter(sid=sid) if sid else rows.filter(subject=subject)
    if sid and subject:
        rows = rows.filter(subject=subject)
    found = list(rows.select_for_update().values_list("pk", "session_key", "subject"))
    keys = [key for _pk, key, _subject in found]
    Session.objects.filter(session_key__in=keys).delete()
    FederatedSession.objects.filter(pk__in=[pk for pk, _key, _subject in found]).delete()
    for person in sorted({s for _pk, _key, s in found} or ({subject} if subject else set())):
        account = (
            SocialAccount.objects.select_related("user")
            .filter(provider=identity_provider.provider_id, uid=person)
            .first()
        )
        audit_record(
            action="session.idp_logout",
            obj=account.user if account is not None else identity_provider,
            partner_id=identity_provider.partner_id,
            data={"how": how, "sessions_ended": sum(1 for f in found if f[2] == person), "by_sid": bool(sid)},
        )
    return len(keys)


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
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise LogoutRefused("malformed") from None
    typ = header.get("typ")
    if typ is not None and str(typ).lower() not in ("logout+jwt", "application/logout+jwt"):
        raise LogoutRefused("typ")
    if header.get("alg") not in ALLOWED_ID_TOKEN_ALGORITHMS:
        raise LogoutRefused("algorithm")
    try:
        discovery = idp_metadata.discovery_document(idp_metadata.discovery_url(identity_provider.issuer))
        key = idp_metadata.signing_key(str(discovery["jwks_uri"]), token)
    except (OAuth2Error, KeyError):
        raise LogoutRefused("signing_key") from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=ALLOWED_ID_TOKEN_ALGORITHMS,
            audience=identity_provider.client_id,
            issuer=identity_provider.issuer,
            leeway=CLOCK_SKEW,
            options={"require": ["iss", "aud", "iat", "jti"]},
        )
    except jwt.InvalidSignatureError:
        raise LogoutRefused("signature") from None
    except jwt.InvalidAudienceError:
        raise LogoutRefused("aud") from None
    except jwt.InvalidIssuerError:
        raise LogoutRefused("iss") from None
    except jwt.ExpiredSignatureError:
        raise LogoutRefused("exp") from None
    except jwt.MissingRequiredClaimError as missing:
        raise LogoutRefused(f"missing_{missing.claim}") from None
    except jwt.InvalidTokenError:
        raise LogoutRefused("malformed") from None
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
    except LogoutRefused as refused:
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
