"""API authentication with personal tokens: `Authorization: Bearer porte_<prefix>_<secret>`.

Only DRF views consult this class, so a token reaches the API and nothing else: pages (the token pages
included) stay session-only, and a stolen token cannot mint more tokens or revoke the owner's.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from portal.access import REFUSAL_MESSAGES, actor_of
from portal.models import ApiToken, User
from portal.services import api_token_hash, api_token_parse

# last_used_at is for people ("used 3 minutes ago"): a write per minute is plenty, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_REFUSALS = {
    ApiToken.State.REVOKED: "This token was revoked.",
    ApiToken.State.EXPIRED: "This token has expired.",
    ApiToken.State.ENDED: "This token ended when its owner was signed out everywhere.",
}


def _token_for(presented: str) -> ApiToken | None:
    parsed = api_token_parse(presented)
    if parsed is None:
        return None
    prefix, secret = parsed
    # Looked up by the hash of the secret, so timing reveals nothing of the stored hashes.
    token = (
        ApiToken.objects.select_related("user__membership__partner", "user__membership__identity_provider")
        .filter(key_hash=api_token_hash(secret))
        .first()
    )
    if token is None or not hmac.compare_digest(token.prefix, prefix):
        return None
    return token


def note_use(holder: Any) -> None:
    """Record that a bearer token (a row with `last_used_at`) was used, at most once per resolution."""
    now = timezone.now()
    if holder.last_used_at is not None and now - holder.last_used_at < LAST_USED_RESOLUTION:
        return
    # Conditional, so concurrent requests write once; bookkeeping, not a state change worth an audit event.
    type(holder).objects.filter(pk=holder.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    ).update(last_used_at=now)


class PersonalTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None  # no token: session authentication may still sign the request in
        if len(parts) != 2:
            raise AuthenticationFailed("Send the token as `Authorization: Bearer porte_…`.")
        token = _token_for(parts[1].decode("latin-1"))
        if token is None:
            raise AuthenticationFailed("Porte does not know this token.")
        refusal = _REFUSALS.get(token.state(timezone.now()))
        if refusal is not None:
            raise AuthenticationFailed(refusal)
        # The same standing as a session's (portal.access): it ends with the person's membership, partner or IdP.
        refusal = actor_of(token.user).refusal
        if refusal is not None:
            raise AuthenticationFailed(REFUSAL_MESSAGES.get(refusal, "This account can no longer use Porte."))
        note_use(token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str | None:
        # A refused token answers 401 with a Bearer challenge. A request that sent no token keeps the API's
        # answer for browsers without a session (403, no challenge): DRF asks only the first class for a header.
        parts = get_authorization_header(request).split()
        if parts and parts[0].lower() == self.keyword:
            return 'Bearer realm="porte", error="invalid_token"'
        return None


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    """Names the scheme in the OpenAPI schema (drf-spectacular cannot guess a custom class)."""

    target_class = PersonalTokenAuthentication
    name = "personalToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (porte_…) created on the API tokens page.",
        }
