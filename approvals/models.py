from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApprovalPolicy(models.Model):
    """How requests for one role are decided. A role without a policy row is auto-approved.

    Approvers are Porte staff and/or the partner's own approvers: the members of `partner_approver_group` (an IdP
    group) when it is set, else the partner's admins. The requester never counts, and N approvals are N
    distinct people (one Porte user is one person: identity is (IdP, subject), never an email address).
    """

    class Approvers(models.TextChoices):
        STAFF = "staff", "Porte staff"
        PARTNER = "partner", "The partner's approvers"
        EITHER = "either", "Porte staff or the partner's approvers"

    role = models.OneToOneField("grants.Role", on_delete=models.CASCADE, related_name="approval_policy")
    # 0: auto-approve (subject to the two conditions below); otherwise this many distinct approvers.
    approvals_required = models.PositiveSmallIntegerField(default=0)
    approvers = models.CharField(max_length=8, choices=Approvers.choices, default=Approvers.STAFF)
    partner_approver_group = models.CharField(max_length=100, blank=True)
    # Auto-approval only when the sign-in asserted MFA; without it the request waits for one approver.
    auto_approve_requires_mfa = models.BooleanField(default=False)
    # Refuse requests (and minting) unless the sign-in asserted MFA.
    require_mfa = models.BooleanField(default=False)
    # Device posture: refuse unless the IdP asserted this claim with this value (e.g. device_compliant=true).
    required_claim = models.CharField(max_length=100, blank=True)
    required_claim_value = models.CharField(max_length=200, blank=True)
    break_glass_allowed = models.BooleanField(default=False)
    pending_ttl = models.DurationField(default=timedelta(hours=24))

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(approvals_required__lte=5), name="approval_policy_at_most_5_approvers"
            ),
            models.CheckConstraint(
                condition=Q(pending_ttl__gte=timedelta(minutes=5)) & Q(pending_ttl__lte=timedelta(days=14)),
                name="approval_policy_ttl_5m_to_14d",
            ),
        ]

    def __str__(self) -> str:
        return f"Approval policy of {self.role}"

    def as_dict(self) -> dict[str, object]:
        return {
            "approvals_required": self.approvals_required,
            "approvers": self.approvers,
            "partner_approver_group": self.partner_approver_group,
            "auto_approve_requires_mfa": self.auto_approve_requires_mfa,
            "require_mfa": self.require_mfa,
            "required_claim": self.required_claim,
            "required_claim_value": self.required_claim_value,
            "break_glass_allowed": self.break_glass_allowed,
            "pending_ttl_s": int(self.pending_ttl.total_seconds()),
        }


class Approval(models.Model):
    """One person's approval of one request: unique per (request, approver), so a second click counts once."""

    request = models.ForeignKey("grants.AccessRequest", on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()

    class Meta:
        ordering = ["at"]
        constraints = [
            models.UniqueConstraint(fields=["request", "approver"], name="approval_once_per_person"),
        ]

    def __str__(self) -> str:
        return f"Approval of request #{self.request_id} by user #{self.approver_id}"


class BreakGlassReview(models.Model):
    """The post-hoc review of a break-glass grant: staff close it with a verdict."""

    class Verdict(models.TextChoices):
        JUSTIFIED = "justified", "Justified"
        UNJUSTIFIED = "unjustified", "Not justified"

    request = models.OneToOneField(
        "grants.AccessRequest", on_delete=models.PROTECT, related_name="break_glass_review"
    )
    created_at = models.DateTimeField()
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    notes = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(verdict="") & Q(reviewed_at__isnull=True))
                | (~Q(verdict="") & Q(reviewed_at__isnull=False)),
                name="break_glass_review_closed_with_verdict",
            ),
        ]

    def __str__(self) -> str:
        return f"Break-glass review of request #{self.request_id}"

    @property
    def is_open(self) -> bool:
        return not self.verdict


class RoleChange(models.Model):
    """A proposed change of a role's permissions, limits, eligibility or approval policy (four-eyes): applied
    only when a second staff member, not its author, approves it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Approved and applied"
        REJECTED = "rejected", "Rejected"
        STALE = "stale", "Superseded (the role changed meanwhile)"

    role = models.ForeignKey("grants.Role", on_delete=models.CASCADE, related_name="changes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The role as the author saw it and as they want it (same keys), so the reviewer sees a diff and an
    # approval never applies a change on top of something the author did not see.
    before = models.JSONField()
    after = models.JSONField()
    reason = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="applied") | ~Q(decided_by=models.F("author")),
                name="role_change_not_decided_by_author",
            ),
        ]

    def __str__(self) -> str:
        return f"Change #{self.pk} of {self.role} ({self.status})"
