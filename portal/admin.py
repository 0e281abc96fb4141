from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest

from portal.models import ApiToken, AuditEvent, User

# Staff sign in through allauth (one login page, one lockout/MFA policy), never through the admin's own form.
admin.site.login = login_required(admin.site.login)  # type: ignore[method-assign]


class ReadOnlyAdmin(admin.ModelAdmin):
    """State changes go through services (audited); the admin shows, it does not edit."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "action", "object_type", "object_id", "actor", "partner_id"]
    list_filter = ["action"]
    search_fields = ["object_id", "action"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Oversight only: a token is created and revoked by its owner, on the tokens page."""

    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "expires_at", "revoked_at"]
    search_fields = ["prefix", "name", "user__username"]
    exclude = ["key_hash", "password_fingerprint"]


@admin.register(User)
class PersonAdmin(ReadOnlyAdmin):
    """Oversight only. Staff accounts are made with `manage.py createsuperuser`; partner people at their first
    sign-in. Nobody sets a password or a staff flag here."""

    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    list_filter = ["is_staff", "is_active"]
    search_fields = ["username", "email"]
    exclude = ["password", "user_permissions", "groups"]
