"""Portal's own API: who the caller is (the CLI uses it to tell the caller's grants from their colleagues')."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from portal.access import acting_user, public


@extend_schema(
    responses={
        200: inline_serializer(
            "Me",
            {
                "username": serializers.CharField(),
                "public_id": serializers.UUIDField(),
                "display_name": serializers.CharField(),
                "is_staff": serializers.BooleanField(),
            },
        )
    }
)
@api_view(["GET"])
def me(request: Request) -> Response:
    """The signed-in user, as grants name their holder (`public_id`)."""
    user = acting_user(request)
    return Response(
        {
            "username": user.username,
            "public_id": str(user.public_id),
            "display_name": user.display_name,
            "is_staff": user.is_staff,
        }
    )


# What the API offers, for whoever finds /api/v1/: its description and its documentation, and its collections. No
# secret: the same as the published schema.
INDEX_ENTRIES = {
    "me": "api_me",
    "roles": "api_roles",
    "grants": "api_grants",
    "access_requests": "api_access_requests",
    "activity": "api_activity",
    "partners": "api_partners",  # staff
}


@public
@extend_schema(exclude=True)
@api_view(["GET"])
@permission_classes([AllowAny])
def index(request: Request) -> Response:
    """The API's front door: where its description and documentation are, how to authenticate, what it holds."""
    return Response(
        {
            "name": "Porte API",
            "version": "1",
            "authentication": "a signed-in session (with its CSRF token), or `Authorization: Bearer <personal token>`"
            " made at /tokens/",
            "schema": request.build_absolute_uri(reverse("api_schema")),
            "documentation": request.build_absolute_uri(reverse("api_docs")),
            "collections": {
                name: request.build_absolute_uri(reverse(url)) for name, url in INDEX_ENTRIES.items()
            },
        }
    )


class ApiDocs(SpectacularSwaggerSplitView):
    """Swagger UI over the published schema: its files are served by Porte (drf-spectacular-sidecar), and its
    set-up script is a request of its own, so the page needs no inline script (the CSP allows none)."""

    template_name = "portal/api_docs.html"
    url_name = "api_schema"
    title = "Porte API"
