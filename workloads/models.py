"""A partner's pipeline (its CI's OIDC identity) and the one role it may use."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models

from grants.models import Role
from partners.models import Partner

MIN_SPAN = timedelta(minutes=15)  # STS's shortest session
MAX_SPAN = timedelta(hours=1)


class Workload(models.Model):
    """A partner's CI pipeline, known by its OIDC issuer and the exact claims its tokens must carry. It exchanges
    such a token at Porte for short STS credentials on `role`. Its identity in Porte is `user` (with a workload
    membership of the partner): SourceIdentity, activity, reviews, revocation all treat it as they treat a
    person, and it never signs in."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for staff approval"
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="workloads")
    name = models.SlugField(max_length=48)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="workload")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="workloads")
    issuer = models.URLField(max_length=500)
    audience = models.CharField(max_length=255)
    # Claim name → the exact value a token must carry (strings compared exactly: no patterns).
    claims = models.JSONField(default=dict)
    span = models.DurationField(default=MIN_SPAN)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    last_exchange_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "name"], name="one_workload_name_per_partner"),
        ]

    def __str__(self) -> str:
        return f"{self.partner.slug}/{self.name}"

    @property
    def reference(self) -> str:
        """How a pipeline names it: `<partner slug>/<name>`."""
        return f"{self.partner.slug}/{self.name}"
