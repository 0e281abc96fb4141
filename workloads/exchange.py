"""A pipeline's OIDC token exchanged for short STS credentials on its workload's one role.

The token must hold, in this order (the first check that fails is named in the audit, never to the caller):
- `workload`: the named workload exists and is active;
- `malformed` / `algorithm`: a JWT signed with an allowed asymmetric algorithm;
- `iss`: issued by the workload's own issuer (checked before any key is fetched: a token never makes Porte
  call an issuer the workload does not name);
- `signature`: signed by a key of that issuer's JWKS (discovery and keys cached as for sign-ins);
- `aud`: exactly the workload's audience; `exp`, `iat` present, not expired, not from the future, and a lifetime of
  at most MAX_TOKEN_LIFETIME;
- `claim:<name>`: every required claim present with exactly the required value;
- `jti` / `replayed`: never exchanged before, by its token id (or its digest if it has none), remembered until
  it expires;
- then the workload's place in the partner must stand (`standing`), and minting follows the partner's access
  window and networks like any grant (`mint`).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import jwt
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from requests import RequestException

from grants.services.machine import workload_grant
from grants.services.minting import GrantNotUsable, MintedCredentials, credential_mint
from partners import idp_metadata
from partners.models import Membership
from portal.access import actor_of
from portal.audit import audit_record
from workloads.models import Workload

MAX_TOKEN_LIFETIME = 3600
CLOCK_SKEW = 30
MAX_TOKEN_BYTES = 16 * 1024


class ExchangeRefused(idp_metadata.TokenRefused):
    """The exchange is refused; `check` names what failed (audited), the caller learns only that it was."""


class IssuerUnavailable(Exception):
    """The workload's issuer could not be reached for its keys: try again later."""


def _workload(reference: str) -> Workload:
    slug, _, name = reference.partition("/")
    workload = (
        Workload.objects.select_related("partner", "role", "user__membership__partner")
        .filter(partner__slug=slug, name=name)
        .first()
    )
    if workload is None or workload.status != Workload.Status.ACTIVE:
        raise ExchangeRefused("workload")
    return workload


def verified_claims(workload: Workload, token: str) -> dict[str, Any]:
    if len(token) > MAX_TOKEN_BYTES:
        raise ExchangeRefused("malformed")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise ExchangeRefused("malformed") from None
    if unverified.get("iss") != workload.issuer:
        raise ExchangeRefused("iss")
    try:
        claims = idp_metadata.verified_token(
            token,
            issuer=workload.issuer,
            leeway=CLOCK_SKEW,
            options={"require": ["exp", "iat"], "verify_aud": False},
        )
    except RequestException:
        raise IssuerUnavailable from None
    # Pinned exactly: one audience, the workload's (a token minted for another relying party is not ours).
    if claims.get("aud") not in (workload.audience, [workload.audience]):
        raise ExchangeRefused("aud")
    iat, exp = claims["iat"], claims["exp"]
    if not isinstance(iat, int | float) or iat > time.time() + CLOCK_SKEW or exp - iat > MAX_TOKEN_LIFETIME:
        raise ExchangeRefused("iat")
    for name, wanted in workload.claims.items():
        if claims.get(name) != wanted:
            raise ExchangeRefused(f"claim:{name}")
    # Each token once: by its id (GitHub's and GitLab's carry one), else by its digest.
    jti = claims.get("jti", hashlib.sha256(token.encode()).hexdigest())
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise ExchangeRefused("jti")
    ttl = max(1, int(exp - time.time()) + CLOCK_SKEW)
    if not cache.add(f"porte:workload-jti:{workload.pk}:{jti}", 1, ttl):
        raise ExchangeRefused("replayed")
    return claims


@transaction.atomic
def _refuse(workload: Workload | None, reference: str, check: str, source_ip: str | None) -> None:
    audit_record(
        action="workload.exchange_refused",
        obj=workload,
        partner_id=workload.partner_id if workload is not None else None,
        data={"workload": reference[:120], "check": check, "source_ip": source_ip},
    )


def workload_exchange(*, reference: str, token: str, source_ip: str | None) -> MintedCredentials:
    """Credentials for the pipeline `reference` names, if `token` holds (ExchangeRefused otherwise, audited).
    No transaction is held while the issuer's keys are fetched or STS answers."""
    workload: Workload | None = None
    try:
        workload = _workload(reference)
        claims = verified_claims(workload, token)
        if actor_of(workload.user).refusal is not None:
            raise ExchangeRefused("standing")
        grant = workload_grant(
            user=workload.user, role=workload.role, span=workload.span, workload=workload.reference
        )
        try:
            minted = credential_mint(
                grant_id=grant.pk,
                user=workload.user,
                kind="workload",
                source_ip=source_ip,
                tags={"porte:workload": workload.reference},
            )
        except GrantNotUsable:
            raise ExchangeRefused("mint") from None
    except idp_metadata.TokenRefused as refused:
        _refuse(workload, reference, refused.check, source_ip)
        raise ExchangeRefused(refused.check) from None
    now = timezone.now()
    Workload.objects.filter(pk=workload.pk).update(last_exchange_at=now)
    # Its "last sign-in": what an access review weighs, as for a person.
    Membership.objects.filter(user_id=workload.user_id).update(last_sign_in_at=now)
    with transaction.atomic():
        audit_record(
            action="workload.exchanged",
            obj=workload,
            partner_id=workload.partner_id,
            data={
                "grant": grant.pk,
                "access_key_id": minted.credentials.access_key_id,
                "subject": str(claims.get("sub", ""))[:255],
                "source_ip": source_ip,
            },
        )
    return minted
