"""A partner's directory (its IdP's SCIM client) and the groups it keeps in Porte. The people it provisions are
memberships (partners.models.Membership, with their SCIM id, userName and externalId)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from partners.models import Membership, Partner


class DirectoryConnection(models.Model):
    """The partner's SCIM bearer token: only its SHA-256 digest is kept. Rotating replaces it (the old token stops
    at once); turning the connection off refuses every request until a new token is made."""

    partner = models.OneToOneField(Partner, on_delete=models.PROTECT, related_name="directory")
    token_prefix = models.CharField(max_length=16, blank=True)
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    token_created_at = models.DateTimeField(null=True, blank=True)
    token_created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"directory of {self.partner}"

    @property
    def is_on(self) -> bool:
        return bool(self.token_hash)


class DirectoryGroup(models.Model):
    """A SCIM Group: its displayName is the group name eligibilities use (grants.Eligibility.group), and its
    members' groups (Membership.groups) are the names of the directory groups they are in."""

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="directory_groups")
    scim_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    display_name = models.CharField(max_length=255)
    scim_external_id = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(Membership, blank=True, related_name="directory_groups")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "display_name"], name="one_directory_group_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.partner})"
