from django.urls import path

from grants import api, metrics_views, role_views, views
from grants.alerts import views as alert_views

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
]
