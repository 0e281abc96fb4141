from django.urls import path

from approvals import api, role_views, views

urlpatterns = [
    path("requests/<int:request_id>/", views.request_detail, name="request_detail"),
    path("requests/<int:request_id>/approve/", views.request_approve, name="request_approve"),
    path("requests/<int:request_id>/deny/", views.request_deny, name="request_deny"),
    path("grants/<int:grant_id>/extend/", views.grant_extend, name="grant_extend"),
    path("staff/approvals/", views.staff_approvals, name="staff_approvals"),
    path("staff/grants/", views.staff_grants, name="staff_grants"),
    path("staff/break-glass/", views.staff_break_glass, name="staff_break_glass"),
    path(
        "staff/break-glass/<int:review_id>/", views.staff_break_glass_review, name="staff_break_glass_review"
    ),
    path("staff/changes/", views.staff_changes, name="staff_changes"),
    path("staff/changes/<int:change_id>/", views.staff_change_detail, name="staff_change_detail"),
    path(
        "staff/changes/<int:change_id>/<str:decision>/", views.staff_change_decide, name="staff_change_decide"
    ),
    # Roles are authored through four-eyes changes (approvals.changes).
    path("staff/partners/<slug:slug>/roles/", role_views.role_list, name="role_list"),
    path("staff/partners/<slug:slug>/roles/new/", role_views.role_create, name="role_create"),
    path("staff/roles/<int:role_id>/", role_views.role_edit, name="role_edit"),
    path(
        "staff/roles/<int:role_id>/revoke-sessions/",
        role_views.role_revoke_sessions,
        name="role_revoke_sessions",
    ),
    path("staff/roles/<int:role_id>/approval/", views.role_approval_policy, name="role_approval_policy"),
    path("partner/members/", views.partner_members, name="partner_members"),
    path("partner/approvals/", views.partner_approvals, name="partner_approvals"),
]

api_urlpatterns = [
    path("access-requests/", api.access_request_create, name="api_access_requests"),
    path("access-requests/<int:request_id>/approve/", api.access_request_approve, name="api_request_approve"),
    path("access-requests/<int:request_id>/deny/", api.access_request_deny, name="api_request_deny"),
]
