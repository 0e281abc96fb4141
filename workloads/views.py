"""Partners' pipelines in the console: staff approve and disable them (the partner page lists them); a partner's
admins list, register and disable their own."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from portal.access import acting, acting_user, partner_admin_only, staff_required
from portal.responses import add_service_errors
from workloads import services
from workloads.forms import PipelineForm
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


# --- the partner admin's page ----------------------------------------------------------------------------------


@partner_admin_only
@require_http_methods(["GET", "POST"])
def partner_pipelines(request: HttpRequest) -> HttpResponse:
    """The organisation's pipelines; register one (staff approve it)."""
    partner = acting(request).partner
    form = PipelineForm(request.POST or None, partner_id=partner.pk)
    if request.method == "POST" and form.is_valid():
        try:
            workload = services.workload_register(
                partner=partner,
                name=form.cleaned_data["name"],
                role=form.cleaned_data["role"],
                issuer=form.cleaned_data["issuer"],
                audience=form.cleaned_data["audience"],
                claims=form.cleaned_data["claims"],
                span=timedelta(minutes=form.cleaned_data["span_minutes"]),
                actor=acting_user(request),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request, f"Pipeline {workload.reference} registered: Porte staff will approve it."
            )
            return redirect("partner_pipelines")
    pipelines = Workload.objects.filter(partner=partner).select_related("role").order_by("name")
    return render(
        request,
        "workloads/pipelines.html",
        {"partner": partner, "pipelines": pipelines, "form": form, "porte_url": settings.PUBLIC_URL},
        status=400 if form.errors else 200,
    )


@partner_admin_only
@require_POST
def partner_pipeline_disable(request: HttpRequest, workload_id: int) -> HttpResponse:
    workload = get_object_or_404(Workload, pk=workload_id, partner_id=acting(request).partner_id)
    services.workload_disable(
        workload=workload, reason="disabled by the partner's admin", actor=acting_user(request)
    )
    messages.success(request, f"Pipeline {workload.reference} disabled; its open grant is being revoked.")
    return redirect("partner_pipelines")
