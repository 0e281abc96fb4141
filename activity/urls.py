from django.urls import path, register_converter

from activity import api, metrics_views, views
from activity.alerts import views as alert_views
from activity.converters import EventTimeConverter

register_converter(EventTimeConverter, "eventtime")

urlpatterns = [
    path("activity/", views.activity_list, name="activity_list"),
    path("activity/lag/", views.activity_lag, name="activity_lag"),
    path("activity/export.<str:fmt>", views.activity_export, name="activity_export"),
    path("activity/<eventtime:at>/<uuid:event_id>/", views.activity_detail, name="activity_detail"),
    path("staff/activity/quarantine/", views.quarantine_list, name="activity_quarantine"),
    path(
        "staff/activity/quarantine/<int:object_id>/retry/",
        views.quarantine_retry,
        name="activity_quarantine_retry",
    ),
    path(
        "staff/activity/quarantine/<int:object_id>/resolve/",
        views.quarantine_resolve,
        name="activity_quarantine_resolve",
    ),
    path("staff/alerts/", alert_views.alert_list, name="alert_list"),
    path("staff/alerts/<int:alert_id>/acknowledge/", alert_views.alert_acknowledge, name="alert_acknowledge"),
    path("staff/metrics/", metrics_views.metrics_dashboard, name="metrics_dashboard"),
    path("metrics", metrics_views.metrics_prometheus, name="metrics_prometheus"),
]

api_urlpatterns = [
    path("activity/", api.activity_list, name="api_activity"),
]
