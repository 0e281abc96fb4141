import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


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

    `hash` covers the event's content and `prev_hash`, so altering or removing any row breaks the chain from
    that row on (see `portal.audit.verify_chain`).
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
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}:{self.object_id}"
