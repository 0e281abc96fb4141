"""The staff console's side of partners' pipelines (the partner page lists them): approve, disable."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.access import acting_user, staff_required
from workloads import services
from workloads.models import Workload


def _back(workload: Workload) -> HttpResponse:
    return redirect(reverse("partner_detail", kwargs={"slug": workload.partner.slug}) + "#pipelines")


@staff_required
@require_POST
def workload_approve(request: HttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(Workload.objects.select_related("partner"), pk=workload_id)
    try:
        services.workload_approve(workload=workload, actor=acting_user(request))
    except (ValidationError, PermissionDenied) as refused:
        messages.error(request, " ".join(getattr(refused, "messages", [str(refused)])))
        return _back(workload)
    messages.success(request, f"Pipeline {workload.reference} approved: it can exchange its CI tokens now.")
    return _back(workload)


@staff_required
@require_POST
def workload_disable(request: HttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(Workload.objects.select_related("partner"), pk=workload_id)
    services.workload_disable(workload=workload, reason="disabled by staff", actor=acting_user(request))
    messages.success(request, f"Pipeline {workload.reference} disabled; its open grant is being revoked.")
    return _back(workload)
