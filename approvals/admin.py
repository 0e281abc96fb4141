from django.contrib import admin

from approvals.models import ApprovalPolicy, BreakGlassReview, RoleChange
from portal.admin import ReadOnlyAdmin


# Read-only here too (policies change through four-eyes changes, reviews on their page).
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
