"""Business actions of portal: personal API tokens. Each writes its audit event in its own transaction."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from portal.access import may_hold_api_tokens
from portal.audit import audit_record
from portal.models import ApiToken, User, password_fingerprint

DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
MAX_TOKEN_LIFETIME = timedelta(days=365)
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LENGTH = 8
_SECRET_LENGTH = 40  # about 238 bits: hashing with plain SHA-256 is safe, there is nothing to brute-force
# Underscores separate the parts, so neither part may contain one.
TOKEN_PATTERN = re.compile(rf"^porte_([a-z0-9]{{{_PREFIX_LENGTH}}})_([A-Za-z0-9]{{{_SECRET_LENGTH}}})$")


def api_token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_parts() -> tuple[str, str]:
    """A new bearer token's (prefix, secret): the prefix names it to people, the secret's digest is stored."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH))
    return prefix, secret


def api_token_parse(presented: str) -> tuple[str, str] | None:
    """(prefix, secret) of a string shaped like a Porte token, None for anything else."""
    match = TOKEN_PATTERN.fullmatch(presented)
    return (match[1], match[2]) if match else None


def _partner_id(user: User) -> int | None:
    membership = getattr(user, "membership", None)
    return membership.partner_id if membership is not None else None


@transaction.atomic
def api_token_create(
    *, user: User, name: str, expires_in: timedelta | None = DEFAULT_TOKEN_LIFETIME
) -> tuple[ApiToken, str]:
    """Create a token for `user` and return it with the full token string, which exists only in this return
    value: show it once, never store or log it."""
    if not may_hold_api_tokens(user):
        raise PermissionDenied("Only partner users and Porte staff can create API tokens.")
    name = name.strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Name the token after where it will be used, e.g. “work laptop”."
    elif len(name) > ApiToken._meta.get_field("name").max_length:  # type: ignore[operator]
        errors["name"] = "Keep the name under 100 characters."
    if expires_in is not None and not timedelta(0) < expires_in <= MAX_TOKEN_LIFETIME:
        errors["expires_in"] = f"A token lives at most {MAX_TOKEN_LIFETIME.days} days."
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    prefix, secret = token_parts()
    # A prefix collision (one in trillions) fails on the unique constraint rather than sharing a name.
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        key_hash=api_token_hash(secret),
        password_fingerprint=password_fingerprint(user),
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
    )
    audit_record(
        action="api_token.created",
        obj=token,
        actor=user,
        partner_id=_partner_id(user),
        data={
            "name": name,
            "prefix": prefix,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, f"porte_{prefix}_{secret}"


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: User) -> ApiToken:
    """Revoke at once: the next request with it is refused. Revoking a revoked token changes nothing."""
    token = (
        ApiToken.objects.select_for_update(of=("self",), no_key=True).select_related("user").get(pk=token.pk)
    )
    if token.revoked_at is not None:
        return token
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(
        action="api_token.revoked",
        obj=token,
        actor=actor,
        partner_id=_partner_id(token.user),
        data={"name": token.name, "prefix": token.prefix},
    )
    return token
