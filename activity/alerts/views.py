"""Staff pages: the alerts list (filters) and acknowledging an alert."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from activity.alerts import services
from activity.alerts.forms import AcknowledgeForm, AlertFilterForm
from activity.models import Alert
from portal.access import acting_user, staff_required
from portal.responses import bad_request, form_errors, invalid

PAGE_SIZE = 50


def alert_for_staff(alert_id: int) -> Alert:
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        raise Http404("No such alert.")
    return alert


@staff_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    filters = AlertFilterForm(request.GET or None)
    alerts = Alert.objects.select_related("partner", "user", "acknowledged_by")
    chosen = filters.cleaned_data if filters.is_valid() else {}
    status = chosen.get("status") or "open"
    if request.GET.get("alert", "").isdigit():
        # The link in an alert's email: that alert, whatever its state.
        alerts, status = alerts.filter(pk=int(request.GET["alert"])), "all"
    if status == "open":
        alerts = alerts.filter(acknowledged_at__isnull=True)
    elif status == "acknowledged":
        alerts = alerts.filter(acknowledged_at__isnull=False)
    if chosen.get("rule"):
        alerts = alerts.filter(rule=chosen["rule"])
    if chosen.get("severity"):
        alerts = alerts.filter(severity=chosen["severity"])
    if chosen.get("partner"):
        alerts = alerts.filter(partner__slug=chosen["partner"])
    page = Paginator(alerts.order_by("-created_at", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "activity/alert_list.html",
        {
            "filters": filters,
            "page": page,
            "status": status,
            "query": query.urlencode(),
            "acknowledge_form": AcknowledgeForm(),
        },
    )


@staff_required
@require_POST
def alert_acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = alert_for_staff(alert_id)
    form = AcknowledgeForm(request.POST)
    back = f"{_list_url()}?alert={alert.pk}"
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=back)
    try:
        services.alert_acknowledge(alert=alert, actor=acting_user(request), note=form.cleaned_data["note"])
    except ValidationError as exc:
        return invalid(request, exc, back=back)
    messages.success(request, f"Alert #{alert.pk} acknowledged.")
    return redirect(_list_url())


def _list_url() -> str:
    from django.urls import reverse

    return reverse("alert_list")
