from django.urls import include, path, register_converter

from grants import api, metrics_views, role_views, staff_home, views
from grants.activity import api as activity_api
from grants.activity import views as activity_views
from grants.activity.converters import EventTimeConverter
from grants.alerts import views as alert_views
from grants.approvals import views as approval_views

register_converter(EventTimeConverter, "eventtime")

urlpatterns = [
    path("", views.dashboard, name="home"),
    path("requests/new/", views.request_access, name="request_access"),
    path("grants/<int:grant_id>/", views.grant_detail, name="grant_detail"),
    path("grants/<int:grant_id>/console/", views.grant_console, name="grant_console"),
    path("grants/<int:grant_id>/cli/", views.grant_cli, name="grant_cli"),
    path("grants/<int:grant_id>/revoke/", views.grant_revoke, name="grant_revoke"),
    path("grants/<int:grant_id>/extend/", views.grant_extend, name="grant_extend"),
    path("staff/partners/<slug:slug>/suspend/", views.partner_suspend, name="partner_suspend"),
    path("staff/partners/<slug:slug>/roles/", role_views.role_list, name="role_list"),
    path("staff/partners/<slug:slug>/roles/new/", role_views.role_create, name="role_create"),
    path("staff/roles/<int:role_id>/", role_views.role_edit, name="role_edit"),
    path(
        "staff/roles/<int:role_id>/revoke-sessions/",
        role_views.role_revoke_sessions,
        name="role_revoke_sessions",
    ),
    path("staff/partners/<slug:slug>/offboard/", views.partner_offboard, name="partner_offboard"),
    # Approvals feature.
    path("requests/<int:request_id>/", approval_views.request_detail, name="request_detail"),
    path("requests/<int:request_id>/approve/", approval_views.request_approve, name="request_approve"),
    path("requests/<int:request_id>/deny/", approval_views.request_deny, name="request_deny"),
    # Staff home: the queues with their counts (the navigation links here).
    path("staff/", staff_home.staff_home, name="staff_home"),
    path("staff/approvals/", approval_views.staff_approvals, name="staff_approvals"),
    path("staff/grants/", approval_views.staff_grants, name="staff_grants"),
    path("staff/break-glass/", approval_views.staff_break_glass, name="staff_break_glass"),
    path(
        "staff/break-glass/<int:review_id>/",
        approval_views.staff_break_glass_review,
        name="staff_break_glass_review",
    ),
    path("staff/changes/", approval_views.staff_changes, name="staff_changes"),
    path("staff/changes/<int:change_id>/", approval_views.staff_change_detail, name="staff_change_detail"),
    path(
        "staff/changes/<int:change_id>/<str:decision>/",
        approval_views.staff_change_decide,
        name="staff_change_decide",
    ),
    path(
        "staff/roles/<int:role_id>/approval/",
        approval_views.role_approval_policy,
        name="role_approval_policy",
    ),
    path("partner/members/", approval_views.partner_members, name="partner_members"),
    path("partner/approvals/", approval_views.partner_approvals, name="partner_approvals"),
    # Activity views (CloudTrail): list, event detail, exports; staff: quarantined trail objects.
    path("activity/", activity_views.activity_list, name="activity_list"),
    path("activity/export.<str:fmt>", activity_views.activity_export, name="activity_export"),
    path("activity/<eventtime:at>/<uuid:event_id>/", activity_views.activity_detail, name="activity_detail"),
    path("staff/activity/quarantine/", activity_views.quarantine_list, name="activity_quarantine"),
    path(
        "staff/activity/quarantine/<int:object_id>/retry/",
        activity_views.quarantine_retry,
        name="activity_quarantine_retry",
    ),
    path(
        "staff/activity/quarantine/<int:object_id>/resolve/",
        activity_views.quarantine_resolve,
        name="activity_quarantine_resolve",
    ),
    # Access reviews (grants/reviews).
    path("", include("grants.reviews.urls")),
    # Alerts and metrics (detection on activity).
    path("staff/alerts/", alert_views.alert_list, name="alert_list"),
    path("staff/alerts/<int:alert_id>/acknowledge/", alert_views.alert_acknowledge, name="alert_acknowledge"),
    path("staff/metrics/", metrics_views.metrics_dashboard, name="metrics_dashboard"),
    path("metrics", metrics_views.metrics_prometheus, name="metrics_prometheus"),
]

api_urlpatterns = [
    path("roles/", api.RoleList.as_view(), name="api_roles"),
    path("grants/", api.GrantList.as_view(), name="api_grants"),
    path("grants/<int:grant_id>/", api.GrantDetail.as_view(), name="api_grant"),
    path("grants/<int:grant_id>/credentials/", api.grant_credentials, name="api_grant_credentials"),
    path("access-requests/", api.access_request_create, name="api_access_requests"),
    # Approvals feature.
    path("access-requests/<int:request_id>/approve/", api.access_request_approve, name="api_request_approve"),
    path("access-requests/<int:request_id>/deny/", api.access_request_deny, name="api_request_deny"),
    # Activity (CloudTrail) list.
    path("activity/", activity_api.activity_list, name="api_activity"),
]
