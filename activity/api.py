"""`GET /api/v1/activity/`: the activity list with the pages' filters and scoping, paged by a `next` cursor."""

from __future__ import annotations

from urllib.parse import quote

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from activity.access import activity_visible_to
from activity.filters import ActivityFilterForm, cursor_encode, form_errors, query_without_cursor
from activity.rows import event_rows
from activity.selectors import PAGE_SIZE, activity_page
from portal.access import acting_user

_PARAMETERS = [
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Events at or after (ISO 8601)."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Events at or before (ISO 8601)."),
    OpenApiParameter("person", OpenApiTypes.UUID, description="A person's Porte id (`person_id`)."),
    OpenApiParameter("grant", OpenApiTypes.INT, description="Events done under this grant."),
    OpenApiParameter(
        "service", OpenApiTypes.STR, description="eventSource, e.g. `ec2` or `s3.amazonaws.com`."
    ),
    OpenApiParameter("event", OpenApiTypes.STR, description="eventName, e.g. `PutObject`."),
    OpenApiParameter("errors_only", OpenApiTypes.BOOL, description="Only calls that failed."),
    OpenApiParameter(
        "flagged_only", OpenApiTypes.BOOL, description="Staff: only calls by principals Porte did not mint."
    ),
    OpenApiParameter("access", OpenApiTypes.STR, enum=["read", "write"], description="Read-only or writes."),
    OpenApiParameter("cursor", OpenApiTypes.STR, description="`cursor` of the previous page."),
]


_EVENT = inline_serializer(
    "ActivityEvent",
    {
        "event_id": serializers.UUIDField(),
        "event_time": serializers.DateTimeField(),
        "partner": serializers.CharField(
            allow_null=True, help_text="Partner slug; null: an account of none."
        ),
        "person": serializers.CharField(allow_null=True),
        "person_id": serializers.UUIDField(allow_null=True),
        "grant": serializers.IntegerField(allow_null=True),
        "event_source": serializers.CharField(),
        "event_name": serializers.CharField(),
        "aws_region": serializers.CharField(),
        "account_id": serializers.CharField(),
        "read_only": serializers.BooleanField(allow_null=True),
        "error_code": serializers.CharField(),
        "error_message": serializers.CharField(),
        "source_ip": serializers.CharField(),
        "user_agent": serializers.CharField(),
        "identity_type": serializers.CharField(),
        "principal_arn": serializers.CharField(),
        "access_key_id": serializers.CharField(),
        "porte_session": serializers.BooleanField(),
        "flagged": serializers.BooleanField(
            help_text="A principal Porte did not mint, in a partner's account."
        ),
    },
)
_PAGE = inline_serializer(
    "ActivityPage",
    {
        "results": _EVENT.__class__(many=True),
        "next": serializers.URLField(allow_null=True),
        "cursor": serializers.CharField(allow_null=True),
    },
)


@extend_schema(parameters=_PARAMETERS, responses={200: _PAGE, 400: OpenApiTypes.OBJECT})
@api_view(["GET"])
def activity_list(request: Request) -> Response:
    """Activity visible to the caller (staff: all; partner admins: their organisation's; others: their own),
    newest first, 50 a page. Follow `next` (or pass `cursor`) for the next page; `next` is null on the last."""
    form = ActivityFilterForm(request.query_params)
    if not form.is_valid():
        return Response(
            {"detail": "Invalid filter.", "errors": form_errors(form)}, status=status.HTTP_400_BAD_REQUEST
        )
    events = form.activity_filter().apply(activity_visible_to(acting_user(request)))
    page = activity_page(events, after=form.cleaned_data["cursor"], size=PAGE_SIZE)
    cursor = cursor_encode(page.next) if page.next else None
    next_url = None
    if cursor is not None:
        query = query_without_cursor(request.query_params)
        next_url = request.build_absolute_uri(
            f"{request.path}?{query}{'&' if query else ''}cursor={quote(cursor)}"
        )
    return Response(
        {"results": [row.as_dict() for row in event_rows(page.events)], "next": next_url, "cursor": cursor}
    )
