from django.contrib import admin

from grants.models import AccessRequest, CredentialIssue, Eligibility, Grant, Role
from portal.admin import ReadOnlyAdmin


@admin.register(Role)
class RoleAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "partner", "max_duration", "provisioned_at"]
    list_filter = ["partner"]


@admin.register(Eligibility)
class EligibilityAdmin(ReadOnlyAdmin):
    list_display = ["role", "user", "group"]


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "requester", "role", "status", "created_at"]
    list_filter = ["status"]


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "role", "status", "starts_at", "ends_at", "attempts"]
    list_filter = ["status", "role__partner"]


@admin.register(CredentialIssue)
class CredentialIssueAdmin(ReadOnlyAdmin):
    list_display = ["access_key_id", "grant", "kind", "issued_at", "expires_at", "source_ip"]
