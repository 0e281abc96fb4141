from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from partners.models import Partner


class Role(models.Model):
    """A scoped IAM role in a partner's dedicated account, provisioned as `porte-<slug>`."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="roles")
    slug = models.SlugField(max_length=48)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    inline_policy = models.JSONField(
        help_text="IAM policy document attached to the role as `porte-permissions`."
    )
    permissions_boundary_arn = models.CharField(max_length=2048)
    max_duration = models.DurationField(default=timedelta(hours=1))
    aws_role_arn = models.CharField(max_length=2048, blank=True)
    provisioned_at = models.DateTimeField(null=True, blank=True)
    # Emergency "revoke all sessions of this role": every session issued before this instant is denied.
    sessions_revoked_before = models.DateTimeField(null=True, blank=True)
    # One writer of the role's IAM at a time (grants/role_lease.py): a lease claimed and committed before any
    # AWS call, never a row lock held across one; and the backoff after the role's AWS calls failed.
    iam_lease_until = models.DateTimeField(null=True, blank=True)
    iam_lease_token = models.CharField(max_length=32, blank=True)
    iam_retry_at = models.DateTimeField(null=True, blank=True)
    iam_failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["partner__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "slug"], name="role_slug_unique_per_partner"),
            models.CheckConstraint(
                condition=Q(max_duration__gte=timedelta(minutes=15))
                & Q(max_duration__lte=timedelta(hours=12)),
                name="role_max_duration_15m_to_12h",
            ),
            models.CheckConstraint(condition=~Q(permissions_boundary_arn=""), name="role_boundary_required"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.partner.slug})"

    @property
    def max_duration_minutes(self) -> int:
        return int(self.max_duration.total_seconds() // 60)

    @property
    def iam_name(self) -> str:
        return f"porte-{self.slug}"


class Eligibility(models.Model):
    """Who may request a role: one person, or everyone in one of the partner's IdP groups."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="eligibilities")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="eligibilities",
    )
    group = models.CharField(max_length=100, blank=True)

    class Meta:
        verbose_name_plural = "eligibilities"
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(group="")) | (Q(user__isnull=True) & ~Q(group="")),
                name="eligibility_user_xor_group",
            ),
            models.UniqueConstraint(
                fields=["role", "user"], condition=Q(user__isnull=False), name="eligibility_unique_user"
            ),
            models.UniqueConstraint(
                fields=["role", "group"], condition=~Q(group=""), name="eligibility_unique_group"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user or 'group ' + self.group} → {self.role}"


class AccessRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        # Approvals: nobody decided in time, or a context condition (window, IP, MFA, posture) failed.
        EXPIRED = "expired", "Expired without a decision"
        REFUSED = "refused", "Refused (conditions not met)"

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="requests")
    justification = models.TextField()
    requested_duration = models.DurationField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    # Context evaluated at request time (source IP, IdP MFA evidence, ...), kept as evidence.
    context = models.JSONField(default=dict, blank=True)
    # Approvals (approvals): when a pending request lapses, who decided, why it was denied or refused,
    # and whether it was a break-glass request (immediate, loud, reviewed afterwards).
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    is_break_glass = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(requested_duration__gt=timedelta(0)), name="request_duration_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.requester} → {self.role}"


class GrantQuerySet(models.QuerySet["Grant"]):
    def active(self) -> GrantQuerySet:
        return self.filter(status=Grant.Status.ACTIVE, ends_at__gt=timezone.now())

    def due(self, now=None) -> GrantQuerySet:
        return self.filter(status=Grant.Status.ACTIVE, ends_at__lte=now or timezone.now())

    def waiting_to_end(self) -> GrantQuerySet:
        """Claimed to end (expiring or revoking): ended once the deny is on the role."""
        return self.filter(status__in=[Grant.Status.EXPIRING, Grant.Status.REVOKING])


class Grant(models.Model):
    """Time-bound access of one person to one role.

    pending ──activate──▶ active ──claim at ends_at──▶ expiring ──deny in AWS──▶ expired
       │                    └──revoke──▶ revoking ──deny in AWS──▶ revoked
       └──activation failed for good──▶ failed;  pending past ends_at ──▶ expired (no credentials ever minted)

    `expiring`/`revoking` are claims: the row is taken by one sweeper before AWS is called, and is only marked
    ended once AWS accepted the deny. A claim older than the lease is retried by the next sweep.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Activating"
        ACTIVE = "active", "Active"
        EXPIRING = "expiring", "Expiring"
        EXPIRED = "expired", "Expired"
        REVOKING = "revoking", "Revoking"
        REVOKED = "revoked", "Revoked"
        FAILED = "failed", "Failed"

    request = models.OneToOneField(AccessRequest, on_delete=models.PROTECT, related_name="grant")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="grants")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="grants")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Sessions issued before this instant are denied on the role (aws:TokenIssueTime); set when claimed to end.
    deny_cutoff = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    failure_reason = models.TextField(blank=True)
    # Approvals: when the holder was told the grant ends soon (once per grant).
    expiry_notified_at = models.DateTimeField(null=True, blank=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="grant_ends_after_start"),
            # One person holding a role has one grant (extensions lengthen it rather than adding another).
            models.UniqueConstraint(
                fields=["user", "role"],
                condition=Q(status__in=["pending", "active"]),
                name="one_open_grant_per_user_role",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "ends_at"], name="grant_due_idx"),
            models.Index(fields=["role", "deny_cutoff"], name="grant_role_deny_idx"),
        ]

    def __str__(self) -> str:
        return f"Grant #{self.pk} {self.user} → {self.role} ({self.status})"

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.ACTIVE and self.ends_at > timezone.now()


class CredentialIssue(models.Model):
    """One minted STS session, so that CloudTrail events (by access key id) join back to the grant."""

    class Kind(models.TextChoices):
        CONSOLE = "console", "Console"
        CLI = "cli", "CLI"
        WORKLOAD = "workload", "Pipeline"

    grant = models.ForeignKey(Grant, on_delete=models.PROTECT, related_name="credentials")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    access_key_id = models.CharField(max_length=128, db_index=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("issued_at")), name="credential_expires_after_issue"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.access_key_id} ({self.kind}) for grant #{self.grant_id}"
