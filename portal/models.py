from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class User(AbstractUser):
    """A person: Porte staff (local account) or a partner user (federated, no password).

    `public_id` is the stable identity Porte shows AWS (SourceIdentity): never reused, never an email.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    @property
    def source_identity(self) -> str:
        # SourceIdentity allows [\w+=,.@-], 2-64 characters.
        return f"porte-{self.public_id.hex}"

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.email or self.username


class AuditEvent(models.Model):
    """Append-only, hash-chained record of every state change, written in the changing transaction.

    Writers only insert (no lock, no read of the chain's head); the sealer (`portal.audit.seal`) then gives each
    committed event, in order, its place `seq` in the chain and its `hash`, which covers the event's content and
    `prev_hash`: altering or removing any sealed row breaks the chain from that row on (`verify_chain`). Until it
    is sealed an event has no seq and no hash, and is counted as the unsealed tail.
    """

    at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    # Plain id, not a foreign key: portal stays independent of the apps, and history outlives partners.
    partner_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    seq = models.BigIntegerField(null=True, blank=True, unique=True)
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    # NULL until sealed: hashes are unique, and unsealed events have none yet.
    hash = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["object_type", "object_id"]),
            # the sealer's work list: small, whatever the size of the log
            models.Index(fields=["id"], condition=models.Q(seq__isnull=True), name="portal_audit_unsealed"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}:{self.object_id}"


def password_fingerprint(user: User) -> str:
    """A digest of the user's password field. Django ties sessions to that field, and "sign out everywhere"
    (a new password, or a fresh unusable one when a partner is suspended) changes it: a token bound to it ends
    with those sessions."""
    return hashlib.sha256(user.password.encode()).hexdigest()


class ApiToken(models.Model):
    """A personal API token (`porte_<prefix>_<secret>`) for the CLI: it acts as its user on the API only.

    Only the SHA-256 of the secret is stored; the secret is shown once, at creation. The prefix is not secret:
    it names the token in the list and the audit log.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        ENDED = "ended", "Ended (signed out everywhere)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the laptop it lives on.")
    prefix = models.CharField(max_length=8, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    password_fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=F("created_at")),
                name="api_token_expires_after_creation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} (porte_{self.prefix}_…)"

    def state(self, now: datetime) -> ApiToken.State:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return self.State.EXPIRED
        if not hmac.compare_digest(self.password_fingerprint, password_fingerprint(self.user)):
            return self.State.ENDED
        return self.State.ACTIVE


class Notification(models.Model):
    """An email and/or webhook message, stored in the transaction of the change it tells about (an outbox): a
    worker delivers it after commit, and beat re-drives any left undelivered, so a lost task or a mail server
    that is down delays a notice but never loses it, and a rolled-back change sends nothing."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    event = models.CharField(max_length=64)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    # Addresses are copied (not referenced): the notice says who was told at the time.
    recipients = models.JSONField(default=list, blank=True)
    # A Slack-compatible incoming webhook (its URL is a secret: never logged, never shown back).
    webhook_url = models.CharField(max_length=2048, blank=True)
    partner_id = models.IntegerField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"], name="notification_pending_idx", condition=Q(status="pending")
            )
        ]

    def __str__(self) -> str:
        return f"{self.event}: {self.subject}"


# --- availability (metrics dashboard) ----------------------------------------------------------------------------


class HealthSample(models.Model):
    """One run of the /health/ checks by the beat schedule: the availability figure is the share of ok samples."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    detail = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {'ok' if self.ok else self.detail}"
