from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from grants.activity import services as activity
from grants.models import (
    AccessRequest,
    ApprovalPolicy,
    BreakGlassReview,
    CredentialIssue,
    Eligibility,
    Grant,
    QuarantinedObject,
    Role,
    RoleChange,
    TrailCursor,
    TrailFile,
)
from portal import aws
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


@admin.register(TrailCursor)
class TrailCursorAdmin(ReadOnlyAdmin):
    list_display = ["prefix", "bucket", "last_key", "objects_ingested", "events_inserted", "updated_at"]


@admin.register(TrailFile)
class TrailFileAdmin(ReadOnlyAdmin):
    list_display = ["key", "events", "size", "newest_event_time", "ingested_at"]
    search_fields = ["key"]
    exclude = ["content"]


@admin.register(QuarantinedObject)
class QuarantinedObjectAdmin(ReadOnlyAdmin):
    """Trail files ingestion could not read, with the reason; staff retry them or mark them resolved."""

    list_display = ["key", "error", "size", "first_seen", "attempts", "resolved"]
    list_filter = ["resolved"]
    search_fields = ["key"]
    actions = ["retry", "resolve"]

    @admin.action(description="Read the selected files again")
    def retry(self, request: HttpRequest, queryset: QuerySet[QuarantinedObject]) -> None:
        try:
            results = [activity.quarantined_object_retry(obj=obj, actor=request.user) for obj in queryset]  # type: ignore[arg-type]
        except aws.AwsError as exc:
            self.message_user(request, f"The trail bucket could not be read: {exc}", messages.ERROR)
            return
        fixed = sum(obj.resolved for obj in results)
        self.message_user(request, f"{fixed} of {len(results)} files ingested; the others keep their error.")

    @admin.action(description="Mark resolved (their events stay out)")
    def resolve(self, request: HttpRequest, queryset: QuerySet[QuarantinedObject]) -> None:
        for obj in queryset.filter(resolved=False):
            activity.quarantined_object_resolve(obj=obj, actor=request.user)  # type: ignore[arg-type]
        self.message_user(request, "Marked resolved.")


# Approvals feature: read-only here too (policies change through four-eyes changes, reviews on their page).
@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(ReadOnlyAdmin):
    list_display = ["role", "approvals_required", "approvers", "require_mfa", "break_glass_allowed"]


@admin.register(RoleChange)
class RoleChangeAdmin(ReadOnlyAdmin):
    list_display = ["id", "role", "author", "status", "created_at", "decided_by"]
    list_filter = ["status"]


@admin.register(BreakGlassReview)
class BreakGlassReviewAdmin(ReadOnlyAdmin):
    list_display = ["id", "request", "created_at", "verdict", "reviewed_by"]
