"""Deciding access requests: auto-approval, N distinct approvers, denial, lapse, break-glass; and the notices
that go with them. Every change is audited and notified in its transaction (notices are delivered on commit)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from approvals.context import Evidence, Refusal, context_refusal
from approvals.models import Approval, ApprovalPolicy, BreakGlassReview
from grants import limits
from grants.models import AccessRequest, Grant, Role
from grants.selectors import roles_requestable_by
from grants.services import expiry
from partners.models import Membership
from portal import queue
from portal.audit import audit_record
from portal.models import User
from portal.notifications import notify, staff_addresses

MIN_JUSTIFICATION = 10
BREAK_GLASS_MIN_JUSTIFICATION = 40
MIN_DENIAL_REASON = 5
EXPIRY_NOTICE_LEAD = timedelta(minutes=15)


class SelfApprovalRefused(Exception):
    """The requester tried to approve their own request (refused whatever the policy)."""


class NotAnApprover(Exception):
    """The person is not among the approvers of this request (callers answer 404, as for a missing request)."""


# --- who approves -----------------------------------------------------------------------------------------------


def policy_for(role: Role) -> ApprovalPolicy | None:
    return ApprovalPolicy.objects.filter(role=role).first()


def approvers_for(role: Role, policy: ApprovalPolicy | None = None) -> QuerySet[User]:
    """Everyone who may approve requests for the role (the requester is excluded per request)."""
    policy = policy if policy is not None else policy_for(role)
    if policy is None or (policy.approvals_required == 0 and not policy.auto_approve_requires_mfa):
        # Auto-approved roles still have someone to fall back on: staff.
        return User.objects.filter(is_staff=True, is_active=True)
    ids: set[int] = set()
    if policy.approvers in (ApprovalPolicy.Approvers.STAFF, ApprovalPolicy.Approvers.EITHER):
        ids |= set(User.objects.filter(is_staff=True, is_active=True).values_list("pk", flat=True))
    if policy.approvers in (ApprovalPolicy.Approvers.PARTNER, ApprovalPolicy.Approvers.EITHER):
        members = Membership.objects.filter(
            partner_id=role.partner_id, is_active=True, user__is_active=True
        ).values_list("user_id", "is_partner_admin", "groups")
        group = policy.partner_approver_group
        ids |= {
            user_id
            for user_id, is_admin, groups in members
            if ((group in (groups or [])) if group else is_admin)
        }
    return User.objects.filter(pk__in=ids)


def may_approve(user: User, request: AccessRequest) -> bool:
    return user.pk != request.requester_id and approvers_for(request.role).filter(pk=user.pk).exists()


def approvals_needed(request: AccessRequest) -> int:
    return int(request.context.get("approvals_required") or 1)


# --- requesting -------------------------------------------------------------------------------------------------


def request_create(
    *,
    requester: User,
    role: Role,
    justification: str,
    duration: timedelta,
    evidence: Evidence | None = None,
    break_glass: bool = False,
) -> AccessRequest:
    """Validate, check the context conditions, then open the request under the role's approval policy.

    Bad input leaves no trace. A failed condition is recorded (a `refused` AccessRequest keeping the evidence,
    and a `request.refused` audit event naming the condition) before the refusal is raised.
    """
    evidence = evidence or Evidence()
    justification = justification.strip()
    policy = policy_for(role)
    _validate(requester, role, justification, duration, policy, break_glass)
    refusal = context_refusal(role, evidence, timezone.now(), break_glass=break_glass)
    if refusal is not None:
        request_refuse(
            requester=requester,
            role=role,
            justification=justification,
            duration=duration,
            evidence=evidence,
            refusal=refusal,
        )
        raise ValidationError({"context": refusal.message})
    return _request_open(
        requester=requester,
        role=role,
        justification=justification,
        duration=duration,
        evidence=evidence,
        policy=policy,
        break_glass=break_glass,
    )


def _validate(
    requester: User,
    role: Role,
    justification: str,
    duration: timedelta,
    policy: ApprovalPolicy | None,
    break_glass: bool,
) -> None:
    errors: dict[str, str] = {}
    if not roles_requestable_by(requester).filter(pk=role.pk).exists():
        errors["role"] = "You are not eligible for this role."
    if len(justification) < MIN_JUSTIFICATION:
        errors["justification"] = "Say why you need this access (at least 10 characters)."
    if break_glass:
        if policy is None or not policy.break_glass_allowed:
            errors["role"] = f"{role.name} does not allow break-glass access: request it for approval."
        elif len(justification) < BREAK_GLASS_MIN_JUSTIFICATION:
            errors["justification"] = (
                f"Break-glass access needs a full justification (at least {BREAK_GLASS_MIN_JUSTIFICATION} "
                "characters): what is broken, the incident or ticket, and what you will do."
            )
    errors.update(limits.too_long(justification=justification))
    if duration < limits.REQUEST_MIN:
        errors["duration"] = limits.SHORTEST_REQUEST
    elif duration > role.max_duration:
        errors["duration"] = (
            f"{role.name} can be granted for at most {int(role.max_duration.total_seconds() // 60)} minutes."
        )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def request_refuse(
    *,
    requester: User,
    role: Role,
    justification: str,
    duration: timedelta,
    evidence: Evidence,
    refusal: Refusal,
) -> AccessRequest:
    now = timezone.now()
    request = AccessRequest.objects.create(
        requester=requester,
        role=role,
        justification=justification,
        requested_duration=duration,
        status=AccessRequest.Status.REFUSED,
        created_at=now,
        decided_at=now,
        decision_reason=refusal.message,
        context={**evidence.as_dict(), "refused": refusal.condition},
    )
    audit_record(
        action="request.refused",
        obj=request,
        actor=requester,
        partner_id=role.partner_id,
        data={"role": role.slug, "condition": refusal.condition, "message": refusal.message},
    )
    return request


@transaction.atomic
def _request_open(
    *,
    requester: User,
    role: Role,
    justification: str,
    duration: timedelta,
    evidence: Evidence,
    policy: ApprovalPolicy | None,
    break_glass: bool,
) -> AccessRequest:
    # One person holding a role has one grant, and one request waiting for it.
    current = (
        Grant.objects.select_for_update(of=("self",), no_key=True)
        .filter(user=requester, role=role, status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE])
        .first()
    )
    if current is not None:
        raise ValidationError(
            {
                "role": f"You already have access to {role.name} until {current.ends_at:%Y-%m-%d %H:%M} UTC: "
                "extend it from its page instead."
            }
        )
    if AccessRequest.objects.filter(
        requester=requester, role=role, status=AccessRequest.Status.PENDING
    ).exists():
        raise ValidationError({"role": f"You already have a request for {role.name} waiting for approval."})
    now = timezone.now()
    required = 0 if policy is None else policy.approvals_required
    if policy is not None and required == 0 and policy.auto_approve_requires_mfa and not evidence.mfa:
        required = 1  # auto-approval only with MFA: without it, one approver decides
    auto = break_glass or required == 0
    request = AccessRequest.objects.create(
        requester=requester,
        role=role,
        justification=justification,
        requested_duration=duration,
        status=AccessRequest.Status.APPROVED if auto else AccessRequest.Status.PENDING,
        created_at=now,
        decided_at=now if auto else None,
        expires_at=None if auto else now + (policy.pending_ttl if policy else timedelta(hours=24)),
        is_break_glass=break_glass,
        context={**evidence.as_dict(), "approvals_required": required},
    )
    audit_record(
        action="request.created",
        obj=request,
        actor=requester,
        partner_id=role.partner_id,
        data={"role": role.slug, "duration_s": int(duration.total_seconds()), "break_glass": break_glass},
    )
    if break_glass:
        _break_glass_open(request, now)
    elif auto:
        audit_record(
            action="request.approved",
            obj=request,
            actor=None,
            partner_id=role.partner_id,
            data={"policy": "auto"},
        )
        _grant_open(request, now)
    else:
        _notify_approvers(request, required)
    return request


def _grant_open(request: AccessRequest, now: datetime) -> Grant:
    try:
        with transaction.atomic():
            grant = Grant.objects.create(
                request=request,
                user_id=request.requester_id,
                role=request.role,
                starts_at=now,
                ends_at=now + request.requested_duration,
            )
    except IntegrityError:
        # A concurrent request for the same role won the race (one open grant per person and role).
        raise ValidationError(
            {"role": f"There is already a request for {request.role.name} in progress."}
        ) from None
    audit_record(
        action="grant.created",
        obj=grant,
        actor=None,
        partner_id=request.role.partner_id,
        data={"ends_at": grant.ends_at.isoformat()},
    )
    queue.on_commit("grants.tasks.grant_activate", grant.pk)
    return grant


# --- deciding ---------------------------------------------------------------------------------------------------


def _locked_pending(request_id: int, actor: User) -> AccessRequest:
    request = (
        AccessRequest.objects.select_for_update(of=("self",), no_key=True)
        .select_related("role__partner", "requester")
        .get(pk=request_id)
    )
    if request.requester_id == actor.pk:
        raise SelfApprovalRefused("You cannot decide on your own request: another approver must.")
    if not may_approve(actor, request):
        raise NotAnApprover("No such request.")
    if request.status != AccessRequest.Status.PENDING:
        raise ValidationError(f"This request is already {request.get_status_display().lower()}.")
    if request.expires_at and request.expires_at <= timezone.now():
        raise ValidationError("This request expired before it was decided: the requester must ask again.")
    return request


@transaction.atomic
def request_approve(*, request_id: int, approver: User) -> AccessRequest:
    """Record one person's approval; once enough distinct people approved, open the grant.

    Raises SelfApprovalRefused, NotAnApprover or ValidationError (already decided, lapsed).
    """
    request = _locked_pending(request_id, approver)
    # What held when the request was made may not hold any more: the grant would be refused or unjustified.
    if not roles_requestable_by(request.requester).filter(pk=request.role_id).exists():
        raise ValidationError(
            f"{request.requester.display_name} may no longer request {request.role.name} "
            "(organisation suspended, membership closed or eligibility removed): deny the request."
        )
    now = timezone.now()
    partner_id = request.role.partner_id
    _, created = Approval.objects.get_or_create(request=request, approver=approver, defaults={"at": now})
    count = request.approvals.count()
    needed = approvals_needed(request)
    if created:
        audit_record(
            action="request.approval_recorded",
            obj=request,
            actor=approver,
            partner_id=partner_id,
            data={"approvals": count, "needed": needed},
        )
    if count < needed:
        return request
    request.status, request.decided_at, request.decided_by = AccessRequest.Status.APPROVED, now, approver
    request.save(update_fields=["status", "decided_at", "decided_by"])
    approvers = list(request.approvals.values_list("approver__public_id", flat=True))
    audit_record(
        action="request.approved",
        obj=request,
        actor=approver,
        partner_id=partner_id,
        data={"policy": "approvers", "approvers": [str(a) for a in approvers]},
    )
    grant = _grant_open(request, now)
    notify(
        event="request.approved",
        subject=f"Access to {request.role.name} approved",
        body=(
            f"Your request #{request.pk} for {request.role.name} was approved by {count} approver(s). "
            f"Access runs until {grant.ends_at:%Y-%m-%d %H:%M} UTC."
        ),
        recipients=[request.requester],
        webhook_url=request.role.partner.webhook_url,
        partner_id=partner_id,
    )
    return request


@transaction.atomic
def request_deny(*, request_id: int, approver: User, reason: str) -> AccessRequest:
    reason = reason.strip()
    if len(reason) < MIN_DENIAL_REASON:
        raise ValidationError({"reason": "Say why the request is denied: the requester is told."})
    if errors := limits.too_long(reason=reason):
        raise ValidationError(errors)
    request = _locked_pending(request_id, approver)
    now = timezone.now()
    request.status, request.decided_at, request.decided_by = AccessRequest.Status.DENIED, now, approver
    request.decision_reason = reason
    request.save(update_fields=["status", "decided_at", "decided_by", "decision_reason"])
    audit_record(
        action="request.denied",
        obj=request,
        actor=approver,
        partner_id=request.role.partner_id,
        data={"reason": request.decision_reason},
    )
    notify(
        event="request.denied",
        subject=f"Access to {request.role.name} denied",
        body=f"Your request #{request.pk} for {request.role.name} was denied: {request.decision_reason}",
        recipients=[request.requester],
        webhook_url=request.role.partner.webhook_url,
        partner_id=request.role.partner_id,
    )
    return request


def requests_expire_pending(*, now: datetime | None = None) -> int:
    """Pending requests nobody decided in time lapse; each requester is told. Safe to run concurrently."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            AccessRequest.objects.select_for_update(of=("self",), no_key=True, skip_locked=True)
            .filter(status=AccessRequest.Status.PENDING, expires_at__lte=now)
            .select_related("role__partner", "requester")[:500]
        )
        for request in due:
            request.status, request.decided_at = AccessRequest.Status.EXPIRED, now
            request.save(update_fields=["status", "decided_at"])
            audit_record(
                action="request.expired",
                obj=request,
                partner_id=request.role.partner_id,
                data={"expires_at": request.expires_at.isoformat() if request.expires_at else None},
            )
            notify(
                event="request.expired",
                subject=f"Your request for {request.role.name} expired",
                body=(
                    f"Nobody decided on your request #{request.pk} for {request.role.name} in time. "
                    "Request again if you still need access."
                ),
                recipients=[request.requester],
                partner_id=request.role.partner_id,
            )
    return len(due)


def _notify_approvers(request: AccessRequest, required: int) -> None:
    role = request.role
    approvers = approvers_for(role).exclude(pk=request.requester_id)
    requester = request.requester
    notify(
        event="request.pending",
        subject=f"{requester.display_name} requests {role.name} ({role.partner.name})",
        body=(
            f"Request #{request.pk}: {role.name} for {int(request.requested_duration.total_seconds() // 60)} "
            f"minutes. Justification: {request.justification}\n"
            f"{required} approval(s) needed before {request.expires_at:%Y-%m-%d %H:%M} UTC. "
            f"Decide at /requests/{request.pk}/"
        ),
        recipients=list(approvers),
        webhook_url=role.partner.webhook_url,
        partner_id=role.partner_id,
    )


# --- break-glass ------------------------------------------------------------------------------------------------


def _break_glass_open(request: AccessRequest, now: datetime) -> None:
    role, requester = request.role, request.requester
    audit_record(
        action="request.break_glass",
        obj=request,
        actor=requester,
        partner_id=role.partner_id,
        data={"alert": True, "role": role.slug, "justification": request.justification},
    )
    grant = _grant_open(request, now)
    BreakGlassReview.objects.create(request=request, created_at=now)
    admins = User.objects.filter(
        membership__partner_id=role.partner_id,
        membership__is_partner_admin=True,
        membership__is_active=True,
        is_active=True,
    )
    notify(
        event="request.break_glass",
        subject=f"BREAK-GLASS: {requester.display_name} took {role.name} ({role.partner.name})",
        body=(
            f"Break-glass access to {role.name} was granted without approval to {requester.display_name} "
            f"until {grant.ends_at:%Y-%m-%d %H:%M} UTC (request #{request.pk}).\n"
            f"Justification: {request.justification}\nPorte staff will review it."
        ),
        recipients=[*staff_addresses(), *admins],
        webhook_url=role.partner.webhook_url,
        partner_id=role.partner_id,
    )


@transaction.atomic
def break_glass_review_close(*, review_id: int, reviewer: User, verdict: str, notes: str) -> BreakGlassReview:
    review = (
        BreakGlassReview.objects.select_for_update(of=("self",), no_key=True)
        .select_related("request__role")
        .get(pk=review_id)
    )
    if not reviewer.is_staff:
        raise NotAnApprover("No such review.")
    notes = notes.strip()
    errors: dict[str, str] = {}
    if verdict not in BreakGlassReview.Verdict.values:
        errors["verdict"] = "Choose a verdict."
    if len(notes) < MIN_DENIAL_REASON:
        errors["notes"] = "Write what the review found (at least 5 characters)."
    if review.request.requester_id == reviewer.pk:
        errors["verdict"] = "You cannot review your own break-glass access."
    if not review.is_open:
        errors["verdict"] = "This review is closed already."
    if errors:
        raise ValidationError(errors)
    review.verdict, review.notes = verdict, notes[:4000]
    review.reviewed_by, review.reviewed_at = reviewer, timezone.now()
    review.save()
    audit_record(
        action="break_glass.reviewed",
        obj=review,
        actor=reviewer,
        partner_id=review.request.role.partner_id,
        data={"request": review.request_id, "verdict": verdict, "notes": review.notes},
    )
    return review


# --- "expiring soon" --------------------------------------------------------------------------------------------


def grants_notify_expiring(*, now: datetime | None = None, lead: timedelta = EXPIRY_NOTICE_LEAD) -> int:
    """Tell holders their access ends within `lead`, once per grant (claimed with `expiry_notified_at`)."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Grant.objects.select_for_update(of=("self",), no_key=True, skip_locked=True)
            .filter(
                status=Grant.Status.ACTIVE,
                expiry_notified_at__isnull=True,
                ends_at__gt=now,
                ends_at__lte=now + lead,
            )
            .select_related("role__partner", "user")[:1000]
        )
        Grant.objects.filter(pk__in=[g.pk for g in due]).update(expiry_notified_at=now)
        for grant in due:
            minutes = max(1, round((grant.ends_at - now).total_seconds() / 60))
            notify(
                event="grant.expiring",
                subject=f"Your access to {grant.role.name} ends in {minutes} minutes",
                body=(
                    f"Grant #{grant.pk} for {grant.role.name} ends at {grant.ends_at:%H:%M} UTC. "
                    "Extend it from its page if you need more time."
                ),
                recipients=[grant.user],
                partner_id=grant.role.partner_id,
            )
    return len(due)


@transaction.atomic
def extension_refusal(grant: Grant) -> str:
    """Why this grant cannot be extended ("" if it can): checked by `grant_extend`, and shown by the grant's page
    instead of a form that could only be refused."""
    if grant.status != Grant.Status.ACTIVE or grant.ends_at <= timezone.now():
        return "Only active access can be extended; request access again."
    policy = policy_for(grant.role)
    if policy is not None and (policy.approvals_required or policy.auto_approve_requires_mfa):
        # Extensions are not approved by anyone: on a role that needs approvers they would bypass them.
        return f"{grant.role.name} needs approval: request access again once this grant ends."
    if extension_most_minutes(grant) < limits.EXTEND_MIN_MINUTES:
        return (
            f"{grant.role.name} can run at most {grant.role.max_duration_minutes} minutes from now, and this grant "
            "already does."
        )
    return ""


def extension_most_minutes(grant: Grant) -> int:
    """The most minutes this grant may be extended by now: it may not run past now + its role's maximum."""
    room = timezone.now() + grant.role.max_duration - grant.ends_at
    return max(0, min(limits.EXTEND_MAX_MINUTES, int(room.total_seconds() // 60)))


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
    if len(justification) < 10:
        errors["justification"] = "Say why you need more time (at least 10 characters)."
    if refusal := extension_refusal(grant):
        errors["grant"] = refusal
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
    expiry.queue_expiry(grant)
    return grant
