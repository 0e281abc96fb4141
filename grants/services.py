"""Business actions on access requests, grants and credentials. Every state change is audited in its
transaction; every action is idempotent so a replayed task is harmless."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from grants import authoring, limits, policies, provisioning, role_lease
from grants.activity.attribution import role_session_name
from grants.approvals import services as approvals
from grants.approvals.context import Evidence, window_close, window_refusal
from grants.models import AccessRequest, CredentialIssue, Grant, Role
from partners import services as partner_services
from partners.models import Partner, ip_allowed
from portal import aws
from portal.access import REFUSAL_MESSAGES, actor_of
from portal.audit import Entry, audit_record, audit_record_many
from portal.models import User

log = logging.getLogger(__name__)

# AWS refuses DurationSeconds below 900; a shorter remainder is cut off by the session policy's time guard.
STS_MIN_SECONDS = 900
STS_CHAINED_MAX_SECONDS = 3600
SWEEP_BATCH = 5000


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


# --- requests -------------------------------------------------------------------------------------------------


def access_request_create(
    *,
    requester: User,
    role: Role,
    justification: str,
    duration: timedelta,
    source_ip: str | None = None,
    evidence: Evidence | None = None,
    break_glass: bool = False,
) -> AccessRequest:
    """Request a role: checked against the context conditions, then decided by the role's approval policy
    (auto-approve when the role has none; see grants.approvals)."""
    return approvals.request_create(
        requester=requester,
        role=role,
        justification=justification,
        duration=duration,
        evidence=evidence or Evidence(source_ip=source_ip),
        break_glass=break_glass,
    )


# --- activation -----------------------------------------------------------------------------------------------


def grant_activate(*, grant_id: int) -> Grant:
    """Make a pending grant usable: confirm its role is in place in AWS, then flip it to active.

    Raises aws.AwsUnavailable (retry) or aws.AwsRejected (permanent); the grant is untouched in both cases.
    """
    grant = Grant.objects.select_related("role__partner").get(pk=grant_id)
    if grant.status != Grant.Status.PENDING:
        return grant
    if grant.ends_at <= timezone.now():
        return _grant_end_unused(grant)
    if grant.role.partner.status != Partner.Status.ACTIVE:
        return grant_record_failure(grant_id=grant.pk, reason="The partner is not active.", permanent=True)
    provisioning.role_check(grant.role)
    with transaction.atomic():
        now = timezone.now()
        updated = Grant.objects.filter(pk=grant.pk, status=Grant.Status.PENDING).update(
            status=Grant.Status.ACTIVE, activated_at=now, failure_reason=""
        )
        if updated:
            audit_record(
                action="grant.activated",
                obj=grant,
                partner_id=grant.role.partner_id,
                data={"attempts": grant.attempts + 1},
            )
            _queue_expiry(grant)
    grant.refresh_from_db()
    return grant


@transaction.atomic
def grant_record_failure(*, grant_id: int, reason: str, permanent: bool) -> Grant:
    """Remember why activation failed; a permanent failure ends the grant in the visible `failed` state."""
    grant = Grant.objects.select_for_update(of=("self",), no_key=True).select_related("role").get(pk=grant_id)
    if grant.status != Grant.Status.PENDING:
        return grant
    grant.attempts += 1
    grant.failure_reason = reason[:2000]
    fields = ["attempts", "failure_reason"]
    if permanent:
        grant.status = Grant.Status.FAILED
        grant.ended_at = timezone.now()
        fields += ["status", "ended_at"]
    grant.save(update_fields=fields)
    audit_record(
        action="grant.failed" if permanent else "grant.activation_retry",
        obj=grant,
        partner_id=grant.role.partner_id,
        data={"reason": grant.failure_reason, "attempt": grant.attempts},
    )
    return grant


@transaction.atomic
def _grant_end_unused(grant: Grant) -> Grant:
    """A grant that never became active before its end: no session exists, so no deny is needed."""
    if Grant.objects.filter(pk=grant.pk, status=Grant.Status.PENDING).update(
        status=Grant.Status.EXPIRED, ended_at=timezone.now()
    ):
        audit_record(
            action="grant.expired", obj=grant, partner_id=grant.role.partner_id, data={"never_active": True}
        )
    grant.refresh_from_db()
    return grant


# --- credentials ----------------------------------------------------------------------------------------------


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
) -> MintedCredentials:
    """Mint an STS session for the grant's holder: attributable, tagged, and dead at the grant's end.

    No lock or transaction is held while AWS answers: the grant is checked, the session assumed (and, for the
    console, exchanged by `exchange` for a sign-in URL), then recorded in a short transaction that checks the grant
    again. A grant revoked or ended meanwhile is refused and its credentials are never handed out (its deny
    cutoff, taken when it was claimed, covers them); a failed exchange records nothing.
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
        session_name=role_session_name(grant_id=grant.pk, public_id=user.public_id),
        using=aws.broker_credentials(),
        duration_seconds=_duration_seconds(grant, now, session_ends_at),
        SourceIdentity=user.source_identity,
        ExternalId=partner.external_id,
        Tags=[
            {"Key": "porte:partner", "Value": partner.slug},
            {"Key": "porte:grant", "Value": str(grant.pk)},
            {"Key": "porte:user", "Value": str(user.public_id)},
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


# --- expiry ---------------------------------------------------------------------------------------------------


def grants_expire_due(*, now: datetime | None = None) -> int:
    """End every grant whose time is up. Safe to run concurrently and repeatedly (beat runs it every
    EXPIRY_SWEEP_SECONDS as the safety net; each grant also has its own task at its end, `grant_expire`).

    1. Claim due grants (active → expiring, deny cutoff set) in one short transaction; rows locked by another
       sweeper are skipped, so two sweepers never claim the same grant.
    2. Per role with grants waiting to end (claimed by this sweep or any earlier one, expiring or revoking):
       put the revocation deny computed from the database, then mark those grants ended and audit them
       (`role_finish_endings`). A role whose AWS call fails is backed off and retried by a later sweep; its
       grants stay waiting (refused by Porte, denied by the session policy at their end) and nothing waits
       for a lease to run out.
    Returns the number of grants ended.
    """
    now = now or timezone.now()
    cutoff = policies.ceil_to_second(now)
    with transaction.atomic():
        due = list(
            Grant.objects.due(now)
            .select_for_update(of=("self",), no_key=True, skip_locked=True)
            .order_by("ends_at")
            .values_list("id", flat=True)[:SWEEP_BATCH]
        )
        if due:
            Grant.objects.filter(id__in=due, status=Grant.Status.ACTIVE).update(
                status=Grant.Status.EXPIRING, deny_cutoff=cutoff, claimed_at=now
            )
    for grant in Grant.objects.filter(status=Grant.Status.PENDING, ends_at__lte=now).select_related("role"):
        _grant_end_unused(grant)
    waiting = set(Grant.objects.waiting_to_end().values_list("role_id", flat=True))
    ended = 0
    partner_of = dict(Role.objects.filter(pk__in=waiting).values_list("pk", "partner_id"))
    unavailable: set[int] = (
        set()
    )  # partners whose AWS did not answer in this sweep: their other roles wait too
    for role_id in sorted(role_lease.ready_roles(waiting, now)):
        if partner_of.get(role_id) in unavailable:
            continue
        try:
            ended += role_finish_endings(role_id=role_id)
        except role_lease.RoleBusy:
            continue  # its writer covers these grants, or the next sweep does
        except aws.AwsError as exc:
            log.warning("could not put revocation deny on role %s: %s", role_id, exc)
            if isinstance(exc, aws.AwsUnavailable):
                unavailable.add(partner_of[role_id])
    return ended


def grant_expire(*, grant_id: int) -> int:
    """End one grant at its time (its own task, queued for ends_at at activation and extension). Early, or
    extended meanwhile: nothing to do (the later task or the sweeper ends it). Returns grants ended."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Grant.objects.filter(pk=grant_id, status=Grant.Status.ACTIVE, ends_at__lte=now).update(
            status=Grant.Status.EXPIRING, deny_cutoff=policies.ceil_to_second(now), claimed_at=now
        )
    role_id = Grant.objects.filter(pk=grant_id).values_list("role_id", flat=True).first()
    if role_id is None or (not claimed and not _waiting(role_id)):
        return 0
    return role_finish_endings(role_id=role_id)


def grant_time_left(*, grant_id: int) -> timedelta | None:
    """How long an active grant has left (None when it is not active)."""
    ends_at = Grant.objects.filter(pk=grant_id, status=Grant.Status.ACTIVE).values_list("ends_at", flat=True)
    return ends_at[0] - timezone.now() if ends_at else None


def _waiting(role_id: int) -> bool:
    return Grant.objects.waiting_to_end().filter(role_id=role_id).exists()


def _queue_expiry(grant: Grant) -> None:
    """On commit, queue the grant's own expiry for its end (the beat sweeper stays the safety net)."""
    from grants import tasks

    grant_id, ends_at = grant.pk, grant.ends_at
    transaction.on_commit(lambda: tasks.grant_expire.apply_async(args=[grant_id], eta=ends_at))


def role_finish_endings(*, role_id: int) -> int:
    """Put the role's revocation deny as the database says it is, then mark the grants waiting to end as ended.

    No lock or transaction is held across the AWS call: the role's IAM lease (grants/role_lease.py) keeps a
    second writer out, the grants are read before the document is computed (so each is in it), and they are
    marked ended in a short transaction afterwards. Raises role_lease.RoleBusy when another writer holds the
    lease (try again in a moment), aws.AwsError after backing the role off."""
    with role_lease.role_iam_lease(role_id):
        role = Role.objects.select_related("partner").get(pk=role_id)
        waiting = list(Grant.objects.waiting_to_end().filter(role_id=role_id).values_list("id", flat=True))
        try:
            provisioning.role_put_revocations(role, timezone.now())
        except aws.AwsError as exc:
            role_lease.record_failure(role, whole_partner=isinstance(exc, aws.AwsUnavailable))
            Grant.objects.filter(id__in=waiting).update(failure_reason=f"Revocation pending: {exc}"[:2000])
            raise
        role_lease.record_success(role)
        return _record_endings(role, waiting)


def _record_endings(role: Role, grant_ids: list[int]) -> int:
    """Only after AWS accepted the deny: end the grants, in one statement per final state, and audit them."""
    with transaction.atomic():
        claimed = list(
            Grant.objects.select_for_update(of=("self",), no_key=True)
            .waiting_to_end()
            .filter(id__in=grant_ids)
            .select_related("user")
        )
        ended_at = timezone.now()
        for claim, final in (
            (Grant.Status.EXPIRING, Grant.Status.EXPIRED),
            (Grant.Status.REVOKING, Grant.Status.REVOKED),
        ):
            ids = [g.pk for g in claimed if g.status == claim]
            if ids:
                Grant.objects.filter(id__in=ids).update(status=final, ended_at=ended_at, failure_reason="")
        audit_record_many(
            [
                Entry(
                    action="grant.expired" if g.status == Grant.Status.EXPIRING else "grant.revoked",
                    obj=g,
                    partner_id=role.partner_id,
                    data={
                        "deny_cutoff": g.deny_cutoff.isoformat() if g.deny_cutoff else None,
                        "source_identity": g.user.source_identity,
                    },
                )
                for g in claimed
            ]
        )
        return len(claimed)


# --- extension ------------------------------------------------------------------------------------------------


@transaction.atomic
def grant_extend(*, grant: Grant, by: timedelta, justification: str, actor: User) -> Grant:
    """Lengthen an active grant (one person holding a role has one grant; extending never shortens it).

    Auto-approved like requests for now; the grant may not run past now + the role's maximum duration. Sessions
    already issued still stop at the old end (their session policy says so): mint new ones after extending.
    """
    grant = Grant.objects.select_for_update(of=("self",), no_key=True).select_related("role").get(pk=grant.pk)
    justification = justification.strip()
    errors: dict[str, str] = {}
    if grant.user_id != actor.pk:
        errors["grant"] = "Only the holder can extend their access."
    if grant.status != Grant.Status.ACTIVE or grant.ends_at <= timezone.now():
        errors["grant"] = "Only active access can be extended; request access again."
    if len(justification) < 10:
        errors["justification"] = "Say why you need more time (at least 10 characters)."
    policy = approvals.policy_for(grant.role)
    if policy is not None and (policy.approvals_required or policy.auto_approve_requires_mfa):
        # Extensions are not approved by anyone: on a role that needs approvers they would bypass them.
        errors["grant"] = f"{grant.role.name} needs approval: request access again once this grant ends."
    errors.update(limits.too_long(justification=justification))
    if by < limits.EXTEND_MIN:
        errors["duration"] = f"Extend by at least {limits.EXTEND_MIN_MINUTES} minutes."
    latest = timezone.now() + grant.role.max_duration
    if grant.ends_at + by > latest:
        errors["duration"] = (
            f"{grant.role.name} can run at most {grant.role.max_duration_minutes} minutes from now "
            f"(until {latest:%H:%M} UTC)."
        )
    if errors:
        raise ValidationError(errors)
    previous = grant.ends_at
    grant.ends_at = previous + by
    grant.save(update_fields=["ends_at"])
    audit_record(
        action="grant.extended",
        obj=grant,
        actor=actor,
        partner_id=grant.role.partner_id,
        data={
            "from": previous.isoformat(),
            "to": grant.ends_at.isoformat(),
            "justification": justification,
            "policy": "auto",
        },
    )
    _queue_expiry(grant)
    return grant


# --- revocation -----------------------------------------------------------------------------------------------


@transaction.atomic
def grant_revoke(*, grant: Grant, reason: str, actor: User | None = None) -> Grant:
    """End a grant before its time. An active grant is claimed (revoking) with a deny cutoff now; the deny is
    put on the role by a task queued on commit (and by the sweeper if that task is lost), and only then is the
    grant marked revoked. A grant that never became active is revoked at once: no session exists."""
    grant = Grant.objects.select_for_update(of=("self",), no_key=True).select_related("role").get(pk=grant.pk)
    now = timezone.now()
    if grant.status == Grant.Status.PENDING:
        grant.status, grant.ended_at = Grant.Status.REVOKED, now
        grant.save(update_fields=["status", "ended_at"])
        audit_record(
            action="grant.revoked",
            obj=grant,
            actor=actor,
            partner_id=grant.role.partner_id,
            data={"reason": reason, "never_active": True},
        )
    elif grant.status == Grant.Status.ACTIVE:
        grant.status, grant.deny_cutoff, grant.claimed_at = (
            Grant.Status.REVOKING,
            policies.ceil_to_second(now),
            now,
        )
        grant.save(update_fields=["status", "deny_cutoff", "claimed_at"])
        audit_record(
            action="grant.revoke_requested",
            obj=grant,
            actor=actor,
            partner_id=grant.role.partner_id,
            data={"reason": reason},
        )
        _queue_role_endings(grant.role_id)
    return grant


def _queue_role_endings(role_id: int) -> None:
    from grants import tasks

    transaction.on_commit(lambda: tasks.role_finish_endings.delay(role_id))


@transaction.atomic
def role_revoke_all_sessions(*, role: Role, reason: str, actor: User | None = None) -> Role:
    """Emergency: deny every session of the role issued until now, whoever holds it. Grants stay as they are;
    holders of active grants can mint new sessions (revoke their grants too if that is the intent)."""
    role = Role.objects.select_for_update(of=("self",), no_key=True).get(pk=role.pk)
    role.sessions_revoked_before = policies.ceil_to_second(timezone.now())
    role.save(update_fields=["sessions_revoked_before"])
    audit_record(
        action="role.sessions_revoked",
        obj=role,
        actor=actor,
        partner_id=role.partner_id,
        data={"before": role.sessions_revoked_before.isoformat(), "reason": reason},
    )
    _queue_role_endings(role.pk)
    return role


@transaction.atomic
def partner_suspend(*, partner: Partner, reason: str, actor: User | None = None) -> Partner:
    """Refuse every sign-in, end every session and revoke every open grant of the partner."""
    partner = partner_services.partner_set_status(
        partner=partner, status=Partner.Status.SUSPENDED, reason=reason, actor=actor
    )
    _revoke_open_grants(partner, reason=f"partner suspended: {reason}", actor=actor)
    return partner


@transaction.atomic
def partner_offboard(*, partner: Partner, reason: str, actor: User | None = None) -> Partner:
    """Suspension plus: memberships closed, IdP removed from service. History (grants, audit) is kept."""
    partner = partner_services.partner_set_status(
        partner=partner, status=Partner.Status.OFFBOARDED, reason=reason, actor=actor
    )
    _revoke_open_grants(partner, reason=f"partner offboarded: {reason}", actor=actor)
    return partner


def _revoke_open_grants(partner: Partner, *, reason: str, actor: User | None) -> None:
    for grant in Grant.objects.filter(
        role__partner=partner, status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE]
    ):
        grant_revoke(grant=grant, reason=reason, actor=actor)


# --- reconciliation -------------------------------------------------------------------------------------------


def grants_redrive_stuck(*, lease: timedelta = timedelta(seconds=60)) -> list[int]:
    """Pending grants whose activation message was lost: queue them again (activation is idempotent)."""
    stale = timezone.now() - lease
    ids = list(
        Grant.objects.filter(status=Grant.Status.PENDING, request__decided_at__lt=stale).values_list(
            "id", flat=True
        )
    )
    from grants import tasks

    for grant_id in ids:
        tasks.grant_activate.delay(grant_id)
    return ids


def roles_reconcile(*, now: datetime | None = None) -> dict[int, list[str]]:
    """Repair IAM drift of every provisioned role of a partner that still has an account; audit what drifted."""
    now = now or timezone.now()
    repaired: dict[int, list[str]] = {}
    role_ids = (
        Role.objects.filter(provisioned_at__isnull=False)
        .exclude(partner__aws_account_id="")
        .values_list("id", flat=True)
    )
    # Roles with grants waiting to end have Porte's own work in flight (their deny is being written, or will be
    # after a backoff): comparing IAM with the database now would report that work as drift.
    busy = set(Grant.objects.waiting_to_end().values_list("role_id", flat=True))
    for role_id in sorted(role_lease.ready_roles(set(role_ids) - busy, now)):
        try:
            with role_lease.role_iam_lease(role_id):
                role = Role.objects.select_related("partner").get(pk=role_id)
                drift = provisioning.role_reconcile(role=role, now=now)
        except role_lease.RoleBusy:
            continue
        except aws.AwsError as exc:
            log.warning("could not reconcile role %s: %s", role_id, exc)
            continue
        significant = [d for d in drift if d != "revocations_pruned"]
        if significant:
            with transaction.atomic():
                audit_record(
                    action="role.drift_repaired",
                    obj=role,
                    partner_id=role.partner_id,
                    data={"drift": significant},
                )
            repaired[role_id] = significant
    return repaired


# --- roles ----------------------------------------------------------------------------------------------------


def _checked_role_fields(
    *, inline_policy: dict[str, object], permissions_boundary_arn: str, max_duration: timedelta
) -> None:
    errors: dict[str, str] = {}
    try:
        authoring.policy_check(inline_policy)
    except authoring.PolicyError as exc:
        errors["inline_policy"] = str(exc)
    if not permissions_boundary_arn.startswith("arn:aws:iam::") or ":policy/" not in permissions_boundary_arn:
        errors["permissions_boundary_arn"] = "A permissions boundary (an IAM policy ARN) is required."
    if not limits.ROLE_MIN <= max_duration <= limits.ROLE_MAX:
        errors["max_duration"] = (
            f"The maximum duration must be between {limits.ROLE_MIN_MINUTES} and {limits.ROLE_MAX_MINUTES} minutes."
        )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def role_create(
    *,
    partner: Partner,
    slug: str,
    name: str,
    inline_policy: dict[str, object],
    permissions_boundary_arn: str,
    max_duration: timedelta,
    description: str = "",
    eligible_groups: list[str] | None = None,
    actor: User | None = None,
) -> Role:
    """Define a scoped role; it is provisioned in the partner's account on commit (idempotently)."""
    from grants.models import Eligibility

    _checked_role_fields(
        inline_policy=inline_policy,
        permissions_boundary_arn=permissions_boundary_arn,
        max_duration=max_duration,
    )
    if Role.objects.filter(partner=partner, slug=slug).exists():
        raise ValidationError({"slug": f"{partner.name} has a role {slug!r} already."})
    role = Role.objects.create(
        partner=partner,
        slug=slug,
        name=name,
        description=description,
        inline_policy=inline_policy,
        permissions_boundary_arn=permissions_boundary_arn,
        max_duration=max_duration,
    )
    for group in eligible_groups or []:
        Eligibility.objects.create(role=role, group=group)
    audit_record(
        action="role.created",
        obj=role,
        actor=actor,
        partner_id=partner.pk,
        data={
            "slug": slug,
            "eligible_groups": eligible_groups or [],
            "max_duration_s": int(max_duration.total_seconds()),
            "policy": inline_policy,
        },
    )
    _queue_provisioning(role)
    return role


@transaction.atomic
def role_update(
    *,
    role: Role,
    name: str,
    description: str,
    inline_policy: dict[str, object],
    permissions_boundary_arn: str,
    max_duration: timedelta,
    eligible_groups: list[str],
    actor: User | None = None,
) -> Role:
    """Change a role's definition; IAM follows on commit. Sessions already issued keep the old rights until
    they expire (revoke them if the change is urgent)."""
    from grants.models import Eligibility

    _checked_role_fields(
        inline_policy=inline_policy,
        permissions_boundary_arn=permissions_boundary_arn,
        max_duration=max_duration,
    )
    role = Role.objects.select_for_update(of=("self",), no_key=True).get(pk=role.pk)
    before = {
        "policy": role.inline_policy,
        "boundary": role.permissions_boundary_arn,
        "max_duration_s": int(role.max_duration.total_seconds()),
        "eligible_groups": sorted(role.eligibilities.exclude(group="").values_list("group", flat=True)),
    }
    role.name, role.description, role.inline_policy = name, description, inline_policy
    role.permissions_boundary_arn, role.max_duration = permissions_boundary_arn, max_duration
    role.save()
    role.eligibilities.exclude(group="").exclude(group__in=eligible_groups).delete()
    for group in eligible_groups:
        Eligibility.objects.get_or_create(role=role, group=group)
    after = {
        "policy": inline_policy,
        "boundary": permissions_boundary_arn,
        "max_duration_s": int(max_duration.total_seconds()),
        "eligible_groups": sorted(eligible_groups),
    }
    audit_record(
        action="role.updated",
        obj=role,
        actor=actor,
        partner_id=role.partner_id,
        data={k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]},
    )
    _queue_provisioning(role)
    return role


def _queue_provisioning(role: Role) -> None:
    if not role.partner.aws_account_id:
        return  # provisioned when the partner's account exists (the reconciler picks it up)
    from grants import tasks

    role_id = role.pk
    transaction.on_commit(lambda: tasks.role_provision.delay(role_id))


# --- taking access away (access reviews) ------------------------------------------------------------------------


def _still_eligible(user_id: int, role: Role, groups: list[str]) -> bool:
    from grants.models import Eligibility

    eligible = Q(user_id=user_id)
    if groups:
        eligible |= Q(group__in=groups)
    return Eligibility.objects.filter(eligible, role=role).exists()


@transaction.atomic
def eligibility_revoke(*, eligibility_id: int, reason: str, actor: User | None = None) -> list[Grant]:
    """Remove an eligibility (one person's, or an IdP group's) and revoke the open grants it was the only reason
    for, with the deny on the role (put on commit). A person still eligible another way keeps their grant.
    Idempotent: an eligibility already gone does nothing. Returns the grants revoked."""
    from grants.models import Eligibility
    from partners.models import Membership

    eligibility = (
        Eligibility.objects.select_for_update(of=("self",))
        .select_related("role", "user")
        .filter(pk=eligibility_id)
        .first()
    )
    if eligibility is None:
        return []
    role = eligibility.role
    open_grants = Grant.objects.filter(role=role, status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE])
    if eligibility.user_id is not None:
        open_grants = open_grants.filter(user_id=eligibility.user_id)
    groups = dict(
        Membership.objects.filter(user_id__in=open_grants.values("user_id")).values_list("user_id", "groups")
    )
    candidates = [
        grant
        for grant in open_grants
        if eligibility.user_id is not None or eligibility.group in (groups.get(grant.user_id) or [])
    ]
    data = {
        "role": role.slug,
        "user": eligibility.user.source_identity if eligibility.user else None,
        "group": eligibility.group,
        "reason": reason,
    }
    eligibility.delete()
    revoked = [
        grant_revoke(grant=grant, reason=reason, actor=actor)
        for grant in candidates
        if not _still_eligible(grant.user_id, role, groups.get(grant.user_id) or [])
    ]
    audit_record(
        action="eligibility.revoked",
        obj=role,
        actor=actor,
        partner_id=role.partner_id,
        data={**data, "grants_revoked": [g.pk for g in revoked]},
    )
    return revoked


@transaction.atomic
def membership_revoke(*, membership_id: int, reason: str, actor: User | None = None) -> list[Grant]:
    """End a person's place in their organisation (partners.services.membership_end: sign-ins refused, sessions
    and tokens ended) and revoke their open grants with the deny on the roles. Idempotent."""
    from partners.models import Membership

    membership = Membership.objects.get(pk=membership_id)
    partner_services.membership_end(membership=membership, reason=reason, actor=actor)
    return [
        grant_revoke(grant=grant, reason=reason, actor=actor)
        for grant in Grant.objects.filter(
            user_id=membership.user_id,
            role__partner_id=membership.partner_id,
            status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE],
        )
    ]
