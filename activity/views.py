"""Activity pages: the list (filters, keyset pages), an event's full record, CSV/JSON exports of the current
filter, and the staff page of quarantined trail objects. Everything is scoped by `access` before it is filtered."""

from __future__ import annotations

import json
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from activity import export
from activity.access import activity_event_for_user, activity_visible_to
from activity.filters import ActivityFilterForm, cursor_encode, form_errors, query_without_cursor
from activity.models import QuarantinedObject
from activity.progress import prefix_statuses
from activity.rows import ExportRows, event_rows
from activity.selectors import activity_page
from activity.services import quarantined_object_resolve, quarantined_object_retry
from portal import aws
from portal.access import acting_user, signed_in, staff_required


@signed_in
@require_GET
def activity_lag(request: HttpRequest) -> HttpResponse:
    """The ingestion banner alone, which pages showing it ask for again now and then (a live region)."""
    return render(request, "activity/_lag_banner.html")


@signed_in
@require_GET
def activity_list(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    form = ActivityFilterForm(request.GET)
    context: dict[str, object] = {
        "form": form,
        "show_activity_lag": True,
        "query": query_without_cursor(request.GET),
        "export_limit": settings.ACTIVITY_EXPORT_MAX_EVENTS,
    }
    if not form.is_valid():
        return render(request, "activity/list.html", context, status=400)
    events = form.activity_filter().apply(activity_visible_to(user))
    page = activity_page(events, after=form.cleaned_data["cursor"])
    context.update(
        rows=event_rows(page.events),
        next_cursor=cursor_encode(page.next) if page.next else "",
        paged=form.cleaned_data["cursor"] is not None,
    )
    return render(request, "activity/list.html", context)


@signed_in
@require_GET
def activity_detail(request: HttpRequest, at: datetime, event_id: UUID) -> HttpResponse:
    event = activity_event_for_user(acting_user(request), at, event_id)
    record = event.record
    context = {
        "row": event_rows([event])[0],
        # Pretty-printed here, escaped by the template: every field of a record is the caller's to choose.
        "record": json.dumps(record, indent=2, ensure_ascii=False) if record is not None else None,
        "show_activity_lag": True,
    }
    return render(request, "activity/detail.html", context)


@signed_in
@require_GET
def activity_export(request: HttpRequest, fmt: str) -> HttpResponse | StreamingHttpResponse:
    if fmt not in ("csv", "json"):
        raise Http404("Exports are .csv or .json.")
    form = ActivityFilterForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form_errors(form).items())
        return HttpResponse(
            f"The filter is not valid, nothing exported. {problems}", status=400, content_type="text/plain"
        )
    events = form.activity_filter().apply(activity_visible_to(acting_user(request)))
    rows = ExportRows(events, limit=settings.ACTIVITY_EXPORT_MAX_EVENTS)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        response = StreamingHttpResponse(export.csv_chunks(rows), content_type="text/csv; charset=utf-8")
    else:
        response = StreamingHttpResponse(export.json_chunks(rows), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="porte-activity-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


# --- staff: quarantined trail objects ---------------------------------------------------------------------------


@staff_required
@require_GET
def quarantine_list(request: HttpRequest) -> HttpResponse:
    context = {
        "prefixes": prefix_statuses(),
        "lag_warn_minutes": settings.ACTIVITY_LAG_WARN_MINUTES,
        "open": QuarantinedObject.objects.filter(resolved=False).order_by("-first_seen")[:200],
        "resolved": QuarantinedObject.objects.filter(resolved=True)
        .select_related("resolved_by")
        .order_by("-resolved_at")[:20],
    }
    return render(request, "activity/quarantine.html", context)


@staff_required
@require_POST
def quarantine_retry(request: HttpRequest, object_id: int) -> HttpResponse:
    obj = get_object_or_404(QuarantinedObject, pk=object_id, resolved=False)
    try:
        obj = quarantined_object_retry(obj=obj, actor=acting_user(request))
    except aws.AwsError as exc:
        messages.error(request, f"Could not read s3://{obj.bucket}/{obj.key}: {exc}. Try again later.")
    else:
        if obj.resolved:
            messages.success(request, f"s3://{obj.bucket}/{obj.key} ingested and resolved.")
        else:
            messages.error(request, f"s3://{obj.bucket}/{obj.key} still cannot be read: {obj.error}")
    return redirect("activity_quarantine")


@staff_required
@require_POST
def quarantine_resolve(request: HttpRequest, object_id: int) -> HttpResponse:
    obj = get_object_or_404(QuarantinedObject, pk=object_id, resolved=False)
    quarantined_object_resolve(obj=obj, actor=acting_user(request))
    messages.success(request, f"s3://{obj.bucket}/{obj.key} marked resolved; its events stay un-ingested.")
    return redirect("activity_quarantine")
