from django.urls import path

from workloads import api, views

api_urlpatterns = [
    path("workloads/", api.WorkloadList.as_view(), name="api_workloads"),
    path("workloads/exchange/", api.workload_exchange, name="api_workload_exchange"),
    path("workloads/<int:workload_id>/approve/", api.workload_approve, name="api_workload_approve"),
    path("workloads/<int:workload_id>/disable/", api.workload_disable, name="api_workload_disable"),
]

console_urlpatterns = [
    path("partner/pipelines/", views.partner_pipelines, name="partner_pipelines"),
    path(
        "partner/pipelines/<int:workload_id>/disable/",
        views.partner_pipeline_disable,
        name="partner_pipeline_disable",
    ),
    path("staff/workloads/<int:workload_id>/approve/", views.workload_approve, name="workload_approve"),
    path("staff/workloads/<int:workload_id>/disable/", views.workload_disable, name="workload_disable"),
]
