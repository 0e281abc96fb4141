from django.urls import path

from grants import api, views

urlpatterns = [
    path("grants/<int:grant_id>/console/", views.grant_console, name="grant_console"),
    path("grants/<int:grant_id>/cli/", views.grant_cli, name="grant_cli"),
    path("grants/<int:grant_id>/revoke/", views.grant_revoke, name="grant_revoke"),
    path("staff/partners/<slug:slug>/suspend/", views.partner_suspend, name="partner_suspend"),
    path("staff/partners/<slug:slug>/offboard/", views.partner_offboard, name="partner_offboard"),
]

api_urlpatterns = [
    path("roles/", api.RoleList.as_view(), name="api_roles"),
    path("grants/", api.GrantList.as_view(), name="api_grants"),
    path("grants/<int:grant_id>/", api.GrantDetail.as_view(), name="api_grant"),
    path("grants/<int:grant_id>/credentials/", api.grant_credentials, name="api_grant_credentials"),
]
