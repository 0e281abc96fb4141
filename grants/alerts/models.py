"""Alert tables. Imported by `grants.models`, so Django sees them as models of the `grants` app."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Alert(models.Model):
    """Something in the activity that staff must look at. One alert per incident, not per event: repeated events
    of the same incident (a burst, the same grant outside its window the same day) add to its count."""

    class Rule(models.TextChoices):
        DENIED_BURST = "denied_burst", "Burst of refused calls"
        OUTSIDE_WINDOW = "outside_window", "Activity outside the access window"
        SENSITIVE_ACTION = "sensitive_action", "Sensitive action"
        AFTER_GRANT_END = "after_grant_end", "Credentials used after their grant ended"
        NEW_SOURCE_IP = "new_source_ip", "New source IP for a user"
        # Not a finding: the rules themselves failed on some events, which were stored but not judged.
        RULES_FAILED = "rules_failed", "Alert rules failed"

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    rule = models.CharField(max_length=32, choices=Rule.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    # What makes two detections the same incident (so a re-ingested file, or two ingestion runs, add no alert).
    dedupe_key = models.CharField(max_length=255, unique=True)
    # Who: the principal as the rule keyed it (a Porte user, or an ARN), and what it maps to in Porte.
    principal = models.CharField(max_length=1024, blank=True)
    partner = models.ForeignKey(
        "partners.Partner", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    grant = models.ForeignKey(
        "grants.Grant", null=True, blank=True, on_delete=models.PROTECT, related_name="alerts"
    )
    summary = models.CharField(max_length=500)
    event_count = models.PositiveIntegerField(default=0)
    # A sample of the events (their ids), not all of them: a burst can be thousands.
    event_ids = models.JSONField(default=list, blank=True)
    first_event_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledgement_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="alert_created_idx"),
            models.Index(
                fields=["-created_at"], name="alert_open_idx", condition=Q(acknowledged_at__isnull=True)
            ),
            # The burst rule finds the burst a new refused call continues.
            models.Index(fields=["rule", "principal", "last_event_at"], name="alert_rule_principal_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(acknowledged_at__isnull=True) | Q(acknowledged_by__isnull=False),
                name="alert_acknowledged_by_someone",
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.summary}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None


class SeenSourceIp(models.Model):
    """The source IPs each Porte user has acted from (in CloudTrail): the baseline of the new-IP rule."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    ip = models.CharField(max_length=64)
    first_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "ip"], name="seen_ip_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.ip} for user {self.user_id}"
