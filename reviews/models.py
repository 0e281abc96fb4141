"""Access review tables.

History is kept forever: nothing here is deleted with what it mentions (PROTECT), and an item keeps its own copy
of what it was about (role, group, person) and of the evidence the reviewer saw, so a report still reads the same
after the eligibility is gone, the grants expired or the partner was offboarded.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q


class ReviewerMode(models.TextChoices):
    SPONSOR = "sponsor", "The partner's sponsor (Porte staff)"
    PARTNER_ADMINS = "partner_admins", "The partner's admins"


class DeadlineAction(models.TextChoices):
    REVOKE = "revoke", "Revoke undecided access"
    ESCALATE = "escalate", "Keep undecided access and escalate to staff"


class ReviewSettings(models.Model):
    """How a partner's access is reviewed. A partner without a row is reviewed with the defaults."""

    partner = models.OneToOneField(
        "partners.Partner", on_delete=models.PROTECT, related_name="review_settings"
    )
    interval = models.DurationField(default=timedelta(days=91), help_text="Time between scheduled reviews.")
    reviewer = models.CharField(max_length=16, choices=ReviewerMode.choices, default=ReviewerMode.SPONSOR)
    response_time = models.DurationField(default=timedelta(days=14), help_text="From start to deadline.")
    on_deadline = models.CharField(
        max_length=16, choices=DeadlineAction.choices, default=DeadlineAction.REVOKE
    )

    class Meta:
        verbose_name_plural = "review settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(interval__gte=timedelta(days=1)), name="review_interval_min_1d"
            ),
            models.CheckConstraint(
                condition=Q(response_time__gte=timedelta(days=1)), name="review_response_min_1d"
            ),
        ]

    def __str__(self) -> str:
        return f"Review settings of {self.partner}"


class ReviewCampaign(models.Model):
    class Kind(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        ON_DEMAND = "on_demand", "On demand"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    partner = models.ForeignKey("partners.Partner", on_delete=models.PROTECT, related_name="review_campaigns")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    reviewer = models.CharField(max_length=16, choices=ReviewerMode.choices)
    on_deadline = models.CharField(max_length=16, choices=DeadlineAction.choices)
    # The activity the evidence looks at: from the end of the previous campaign's period (or one interval back)
    # to the start of this one.
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deadline = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    # Days-before-deadline reminders already sent (e.g. [3, 1]): each is sent once.
    reminders_sent = models.JSONField(default=list, blank=True)
    # Per role as it was at the start: {"<role id>": {"slug", "name", "allowed": [IAM actions, expanded]}}.
    roles = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(deadline__gt=models.F("started_at")), name="review_deadline_after"
            ),
            models.CheckConstraint(
                condition=Q(period_end__gte=models.F("period_start")), name="review_period_ordered"
            ),
            # One open campaign per partner: a second would ask the same questions twice.
            models.UniqueConstraint(
                fields=["partner"], condition=Q(status="open"), name="one_open_review_per_partner"
            ),
        ]
        indexes = [models.Index(fields=["status", "deadline"], name="review_open_deadline_idx")]

    def __str__(self) -> str:
        return f"Review #{self.pk} of {self.partner_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class ReviewItem(models.Model):
    """One question of a campaign: should this access stay? With the evidence as the reviewer saw it."""

    class Kind(models.TextChoices):
        ELIGIBILITY = "eligibility", "Role eligibility (person)"
        GROUP_ELIGIBILITY = "group_eligibility", "Role eligibility (IdP group)"
        MEMBERSHIP = "membership", "Membership"
        ADMIN = "admin", "Partner admin"

    class Decision(models.TextChoices):
        KEEP = "keep", "Keep"
        REVOKE = "revoke", "Revoke"
        NARROW = "narrow", "Narrow"

    class Assignee(models.TextChoices):
        SPONSOR = "sponsor", "Sponsor"
        PARTNER_ADMINS = "partner_admins", "Partner admins"

    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.PROTECT, related_name="items")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    assignee = models.CharField(max_length=16, choices=Assignee.choices)
    # What it is about. `eligibility` is only a pointer to the live row (gone once revoked); role, group and
    # person are kept.
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    role = models.ForeignKey("grants.Role", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    group = models.CharField(max_length=100, blank=True)
    eligibility = models.ForeignKey(
        "grants.Eligibility", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    label = models.CharField(max_length=300)
    # Evidence, frozen at generation.
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    grants_in_period = models.PositiveIntegerField(default=0)
    last_grant_at = models.DateTimeField(null=True, blank=True)
    actions_used = models.JSONField(default=list, blank=True)
    actions_allowed_count = models.PositiveIntegerField(default=0)
    recommended = models.CharField(max_length=8, choices=Decision.choices)
    recommendation = models.CharField(max_length=200)
    # The decision.
    decision = models.CharField(max_length=8, choices=Decision.choices, blank=True)
    comment = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # Decided by the deadline rather than by a person (revoked, or kept and escalated).
    by_deadline = models.BooleanField(default=False)
    escalated = models.BooleanField(default=False)
    # A revoke decision carried out (eligibility removed, membership ended, admin status removed).
    enacted_at = models.DateTimeField(null=True, blank=True)
    # A narrow decision is a follow-up for staff to change the role by hand: Porte never edits IAM by itself.
    follow_up_done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decision="") | Q(decided_at__isnull=False), name="review_decision_has_time"
            ),
            models.CheckConstraint(
                condition=Q(decision__in=["", "keep"]) | ~Q(comment=""), name="review_comment_required"
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "decision"], name="review_item_decision_idx"),
        ]

    def __str__(self) -> str:
        return f"Review item #{self.pk}: {self.label}"

    @property
    def actions_used_count(self) -> int:
        """How many of the role's allowed actions were used (as the recommendation counts them: calls outside the
        allowed set, refused or not, are not a use of the role's permissions)."""
        if self.role_id is None:
            return len(self.actions_used)
        return self.actions_allowed_count - len(self.unused_actions())

    def unused_actions(self) -> list[str]:
        """The role's allowed actions this access never used in the period (as frozen in the campaign)."""
        if self.role_id is None:
            return []
        allowed = self.campaign.roles.get(str(self.role_id), {}).get("allowed", [])
        used = {a.lower() for a in self.actions_used}
        return [a for a in allowed if a.lower() not in used]
