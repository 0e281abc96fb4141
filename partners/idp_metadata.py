"""What Porte reads from a partner's OpenID Connect IdP besides the token: its discovery document and its signing
keys (JWKS), kept in the shared cache so that a sign-in costs the IdP one call, the code exchange.

- The discovery document is kept DISCOVERY_SECONDS. Every use still checks it names the onboarded issuer
  (partners.oidc), so a changed document is refused, cached or not.
- The keys are kept KEYS_SECONDS. A token signed with a key id Porte does not know (the IdP rotated its keys)
  makes Porte fetch them again at once, but at most once per REFETCH_SECONDS for the same key id: a key id the
  IdP does not have is refused without asking it again and again. (ID tokens reach Porte only from the IdP's
  token endpoint, which Porte calls itself, so the key ids it meets are the IdP's.)
"""

from __future__ import annotations

import hashlib
from typing import Any

import jwt
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django.core.cache import cache

from partners.idp_validation import ALLOWED_ID_TOKEN_ALGORITHMS

DISCOVERY_SECONDS = 3600
KEYS_SECONDS = 3600
REFETCH_SECONDS = 60


def _key(kind: str, url: str) -> str:
    return f"porte:oidc:{kind}:{hashlib.sha256(url.encode()).hexdigest()}"


def _get_json(url: str) -> Any:
    with get_adapter().get_requests_session() as session:
        response = session.get(url)
        response.raise_for_status()
        return response.json()


def discovery_url(issuer: str) -> str:
    """Where the issuer's discovery document is (as allauth's provider builds it from its server_url)."""
    return issuer if "/.well-known/" in issuer else issuer + "/.well-known/openid-configuration"


def discovery_document(url: str) -> dict[str, Any]:
    """The IdP's discovery document at `url` (RequestException when it cannot be fetched)."""
    key = _key("discovery", url)
    document = cache.get(key)
    if document is None:
        document = _get_json(url)
        if not isinstance(document, dict):
            raise OAuth2Error("The IdP's discovery document is not a JSON object.")
        cache.set(key, document, DISCOVERY_SECONDS)
    return dict(document)


def signing_key(keys_url: str, token: str) -> Any:
    """The public key that signed `token`, from the IdP's JWKS at `keys_url` (OAuth2Error when there is none)."""
    kid = jwt.get_unverified_header(token).get("kid")
    if not isinstance(kid, str) or not kid:
        raise OAuth2Error("The ID token names no signing key (kid).")
    key = _key("jwks", keys_url)
    keys = cache.get(key)
    found = _lookup(keys, kid) if keys is not None else None
    if found is None and (
        keys is None or cache.add(_key("jwks-refetch", f"{keys_url} {kid}"), 1, REFETCH_SECONDS)
    ):
        keys = _get_json(keys_url)
        cache.set(key, keys, KEYS_SECONDS)
        found = _lookup(keys, kid)
    if found is None:
        raise OAuth2Error(f"Invalid 'kid': {kid[:100]!r}")
    return found


def _lookup(keys: Any, kid: str) -> Any:
    if not isinstance(keys, dict) or not isinstance(keys.get("keys"), list):
        raise OAuth2Error("The IdP's JWKS is not a key set.")
    return jwtkit.lookup_kid_jwk(keys, kid)


class TokenRefused(Exception):
    """A token that does not hold; `check` names what failed (for the audit, never for the caller)."""

    def __init__(self, check: str) -> None:
        super().__init__(check)
        self.check = check


def verified_token(token: str, *, issuer: str, **decode: Any) -> dict[str, Any]:
    """The claims of a JWT signed by `issuer`: an allowed asymmetric algorithm, a key of the issuer's JWKS (found
    through its discovery document, both from the cache), then `jwt.decode` with `decode`'s checks. Each failure
    raises TokenRefused naming the check; an issuer that cannot be reached raises RequestException."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise TokenRefused("malformed") from None
    if header.get("alg") not in ALLOWED_ID_TOKEN_ALGORITHMS:
        raise TokenRefused("algorithm")
    try:
        discovery = discovery_document(discovery_url(issuer))
        if discovery.get("issuer") != issuer:
            raise TokenRefused("iss")
        key = signing_key(str(discovery["jwks_uri"]), token)
    except (OAuth2Error, KeyError):
        raise TokenRefused("signing_key") from None
    try:
        return dict(
            jwt.decode(token, key=key, algorithms=ALLOWED_ID_TOKEN_ALGORITHMS, issuer=issuer, **decode)
        )
    except jwt.InvalidSignatureError:
        raise TokenRefused("signature") from None
    except jwt.InvalidAudienceError:
        raise TokenRefused("aud") from None
    except jwt.InvalidIssuerError:
        raise TokenRefused("iss") from None
    except jwt.ExpiredSignatureError:
        raise TokenRefused("exp") from None
    except jwt.ImmatureSignatureError:
        raise TokenRefused("nbf") from None
    except jwt.MissingRequiredClaimError as missing:
        raise TokenRefused(f"missing_{missing.claim}") from None
    except jwt.exceptions.InvalidJTIError:
        raise TokenRefused("jti") from None
    except jwt.InvalidTokenError:
        raise TokenRefused("malformed") from None
