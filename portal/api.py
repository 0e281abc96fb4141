"""Portal's own API: who the caller is (the CLI uses it to tell the caller's grants from their colleagues')."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from portal.access import acting_user


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
