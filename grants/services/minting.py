"""Minting a person's credentials for a grant: STS AssumeRole with SourceIdentity, session tags and a session
policy that ends with the grant; refusals (window, network, a grant no longer usable) are recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from grants import policies
from grants.models import CredentialIssue, Grant
from partners.conditions import window_close, window_refusal
from partners.models import ip_allowed
from portal import aws
from portal.access import REFUSAL_MESSAGES, actor_of
from portal.audit import audit_record
from portal.models import User

# AWS refuses DurationSeconds below 900; a shorter remainder is cut off by the session policy's time guard.
STS_MIN_SECONDS = 900


STS_CHAINED_MAX_SECONDS = 3600


class GrantNotUsable(Exception):
    """Credentials cannot be minted for this grant now; the message says why, for the person asking."""


@dataclass(frozen=True)
class MintedCredentials:
    credentials: aws.Credentials
    issue: CredentialIssue
    # The AWS console sign-in URL, when the session was exchanged for one.
    sign_in_url: str | None = None

    def credential_process(self) -> dict[str, object]:
        """The JSON the AWS CLI/SDKs read from a `credential_process` command."""
        c = self.credentials
        return {
            "Version": 1,
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key,
            "SessionToken": c.session_token,
            "Expiration": policies.iso(c.expiration),
        }


def _duration_seconds(grant: Grant, now: datetime, ends_at: datetime | None = None) -> int:
    """Seconds to ask STS for: until `ends_at` (the grant's end, or the access window's close if sooner)."""
    remaining = int(((ends_at or grant.ends_at) - now).total_seconds())
    ceiling = int(grant.role.max_duration.total_seconds())
    if aws.broker_is_chained():
        ceiling = min(ceiling, STS_CHAINED_MAX_SECONDS)
    return max(STS_MIN_SECONDS, min(remaining, ceiling))


def credential_mint(
    *,
    grant_id: int,
    user: User,
    kind: str,
    source_ip: str | None = None,
    exchange: Callable[[aws.Credentials], str] | None = None,
    tags: dict[str, str] | None = None,
) -> MintedCredentials:
    """Mint an STS session for the grant's holder: attributable, tagged, and dead at the grant's end.

    No lock or transaction is held while AWS answers: the grant is checked, the session assumed (and, for the
    console, exchanged by `exchange` for a sign-in URL), then recorded in a short transaction that checks the grant
    again. A grant revoked or ended meanwhile is refused and its credentials are never handed out (its deny
    cutoff, taken when it was claimed, covers them); a failed exchange records nothing. `tags` are added to the
    session's tags (a pipeline's name).
    """
    standing = actor_of(user).refusal
    if standing is not None:
        raise GrantNotUsable(REFUSAL_MESSAGES.get(standing, "This account can no longer use Porte."))
    grant = Grant.objects.select_related("role__partner", "request").filter(pk=grant_id, user=user).first()
    if grant is None:
        raise GrantNotUsable("No such grant.")
    now = timezone.now()
    _check_usable(grant, now)
    role, partner = grant.role, grant.role.partner
    if not role.aws_role_arn:
        raise GrantNotUsable("This role is not provisioned yet; try again in a minute.")
    refusal = _mint_refusal(grant, source_ip, now)
    if refusal is not None:
        _mint_refuse(grant, user, refusal)
        raise GrantNotUsable(refusal[1])
    _wait_past_revocations(grant)
    now = timezone.now()
    # Credentials never outlive the partner's open access window (break-glass is not bound by it).
    close = None if grant.request.is_break_glass else window_close(partner, now)
    session_ends_at = min(grant.ends_at, close) if close else grant.ends_at
    credentials = aws.assume_role(
        role.aws_role_arn,
        session_name=policies.role_session_name(grant_id=grant.pk, public_id=user.public_id),
        using=aws.broker_credentials(),
        duration_seconds=_duration_seconds(grant, now, session_ends_at),
        SourceIdentity=user.source_identity,
        ExternalId=partner.external_id,
        Tags=[
            {"Key": "porte:partner", "Value": partner.slug},
            {"Key": "porte:grant", "Value": str(grant.pk)},
            {"Key": "porte:user", "Value": str(user.public_id)},
            *({"Key": key, "Value": value} for key, value in (tags or {}).items()),
        ],
        Policy=_compact(
            policies.session_policy(ends_at=session_ends_at, source_cidrs=partner.source_ip_allowlist)
        ),
    )
    sign_in_url = exchange(credentials) if exchange is not None else None
    with transaction.atomic():
        locked = Grant.objects.select_for_update(of=("self",), no_key=True).filter(pk=grant.pk).first()
        if locked is None:
            raise GrantNotUsable("No such grant.")
        _check_usable(locked, timezone.now())
        issue = CredentialIssue.objects.create(
            grant=grant,
            kind=kind,
            access_key_id=credentials.access_key_id,
            issued_at=now,
            expires_at=min(credentials.expiration, session_ends_at),
            source_ip=source_ip,
        )
        audit_record(
            action="credential.issued",
            obj=issue,
            actor=user,
            partner_id=partner.pk,
            data={
                "grant": grant.pk,
                "kind": kind,
                "access_key_id": credentials.access_key_id,
                "expires_at": credentials.expiration.isoformat(),
            },
        )
    return MintedCredentials(credentials, issue, sign_in_url)


def _check_usable(grant: Grant, now: datetime) -> None:
    """Refuse, saying truly why, a grant that cannot be used now."""
    if grant.status == Grant.Status.PENDING and grant.ends_at > now:
        raise GrantNotUsable("This grant is still activating; try again in a moment.")
    if grant.status == Grant.Status.ACTIVE and grant.ends_at > now:
        return
    if grant.status in (Grant.Status.REVOKING, Grant.Status.REVOKED):
        when = grant.deny_cutoff or grant.ended_at
        raise GrantNotUsable(f"This grant was revoked{_at(when)}: request access again.")
    if grant.status == Grant.Status.FAILED:
        raise GrantNotUsable("This grant could not be activated: request access again.")
    raise GrantNotUsable(
        f"This grant expired{_at(min(grant.ends_at, grant.ended_at or grant.ends_at))}: request access again."
    )


def _at(moment: datetime | None) -> str:
    return f" at {moment:%Y-%m-%d %H:%M} UTC" if moment else ""


# A session minted just after a revocation must not carry an issue time before that revocation's cutoff (the same
# second): it would be denied on arrival. The margin covers the clocks of Porte and AWS disagreeing a little.
_CUTOFF_MARGIN = timedelta(milliseconds=100)


_CUTOFF_MAX_WAIT = timedelta(seconds=2)


def _wait_past_revocations(grant: Grant) -> None:
    """Wait until the holder's latest revocation cutoff on this role (and the role's revoke-all) has passed."""
    latest = Grant.objects.filter(user_id=grant.user_id, role_id=grant.role_id).aggregate(
        latest=Max("deny_cutoff")
    )["latest"]
    cutoffs = [c for c in (latest, grant.role.sessions_revoked_before) if c is not None]
    wait = max(cutoffs) + _CUTOFF_MARGIN - timezone.now() if cutoffs else timedelta(0)
    if wait <= timedelta(0):
        return
    if wait > _CUTOFF_MAX_WAIT:
        raise GrantNotUsable("Sessions of this role were revoked a moment ago; try again in a few seconds.")
    time.sleep(wait.total_seconds())


def _mint_refusal(grant: Grant, source_ip: str | None, now: datetime) -> tuple[str, str] | None:
    """The context condition that forbids minting now, as (condition, message for the person)."""
    partner = grant.role.partner
    if not ip_allowed(partner.source_ip_allowlist, source_ip):
        return (
            "source_ip",
            f"Credentials can only be issued to your organisation's networks; {source_ip} is not one of them.",
        )
    window = None if grant.request.is_break_glass else window_refusal(partner, now)
    if window is not None:
        return window.condition, window.message
    return None


@transaction.atomic
def _mint_refuse(grant: Grant, user: User, refusal: tuple[str, str]) -> None:
    audit_record(
        action="credential.refused",
        obj=grant,
        actor=user,
        partner_id=grant.role.partner_id,
        data={"condition": refusal[0], "message": refusal[1]},
    )


def _compact(document: dict[str, object]) -> str:
    import json

    return json.dumps(document, separators=(",", ":"))
