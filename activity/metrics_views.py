"""The metrics dashboard (staff) and the same figures for Prometheus at /metrics."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from activity import metrics
from activity.charts import bar_chart, humanize
from portal.access import acting, public, staff_required

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DASHBOARD = (
    "unauthorized_attempts",
    "signins_refused",
    "access_denied",
    "policy_violations",
    "security_incidents",
    "time_to_revoke_p50",
    "time_to_revoke_p95",
    "request_processing_p50",
    "request_processing_p95",
    "availability",
)


@never_cache
@staff_required
@require_GET
def metrics_dashboard(request: HttpRequest) -> HttpResponse:
    figures = metrics.figures()
    panels = []
    for key in _DASHBOARD:
        series = figures[key]
        panels.append(
            {
                "series": series,
                "total": humanize(series.total, series.unit),
                "chart": bar_chart(series.values, figures.days, series.unit, series.label),
            }
        )
    return render(
        request,
        "activity/metrics.html",
        {
            "figures": figures,
            "panels": panels,
            "days": metrics.DAYS,
            "cache_seconds": settings.METRICS_CACHE_SECONDS,
        },
    )


@public
@never_cache
@require_GET
def metrics_prometheus(request: HttpRequest) -> HttpResponse:
    """For a scraper with the bearer token (PORTE_METRICS_TOKEN), or signed-in staff. A wrong or unexpected token
    is refused (401); without one, anybody but staff finds nothing here (404)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, presented = header.partition(" ")
        expected = settings.METRICS_TOKEN
        if not (
            scheme.lower() == "bearer"
            and expected
            and hmac.compare_digest(presented.strip().encode(), expected.encode())
        ):
            response = HttpResponse("Invalid metrics token.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="porte-metrics"'
            return response
    elif not (actor := acting(request)).is_staff or not actor.in_standing:
        raise Http404
    text = metrics.prometheus_text(metrics.figures()) + metrics.audit_tail_text() + metrics.ingestion_text()
    return HttpResponse(text, content_type=PROMETHEUS_CONTENT_TYPE)
