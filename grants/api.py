"""REST API v1: the same services as the pages, tenancy-scoped by the same selectors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, throttle_classes
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from grants.access import grant_for_user
from grants.models import CredentialIssue, Grant, Role
from grants.selectors import grants_visible_to, roles_requestable_by
from grants.services import minting
from portal import aws
from portal.access import acting_user
from portal.http import client_ip


class RoleSerializer(serializers.ModelSerializer):
    partner = serializers.CharField(source="partner.slug", read_only=True)
    max_duration_minutes = serializers.SerializerMethodField()

    class Meta:
        model = Role
        fields = ["slug", "name", "description", "partner", "max_duration_minutes"]
        read_only_fields = fields

    def get_max_duration_minutes(self, role: Role) -> int:
        return int(role.max_duration.total_seconds() // 60)


class GrantSerializer(serializers.ModelSerializer):
    role = serializers.CharField(source="role.slug", read_only=True)
    partner = serializers.CharField(source="role.partner.slug", read_only=True)
    user = serializers.UUIDField(source="user.public_id", read_only=True)
    justification = serializers.CharField(source="request.justification", read_only=True)

    class Meta:
        model = Grant
        fields = [
            "id",
            "role",
            "partner",
            "user",
            "status",
            "starts_at",
            "ends_at",
            "activated_at",
            "ended_at",
            "justification",
            "failure_reason",
        ]
        read_only_fields = fields


class RoleList(ListAPIView):
    """Roles the caller may request."""

    serializer_class = RoleSerializer

    def get_queryset(self):
        return roles_requestable_by(acting_user(self.request))


class GrantList(ListAPIView):
    """Grants visible to the caller: their own (partner admins: their organisation's)."""

    serializer_class = GrantSerializer

    def get_queryset(self):
        return grants_visible_to(acting_user(self.request))


class GrantDetail(RetrieveAPIView):
    serializer_class = GrantSerializer

    def get_object(self) -> Grant:
        return grant_for_user(acting_user(self.request), self.kwargs["grant_id"])


# What a mint answers: the AWS CLI's credential_process format (the workload exchange answers the same).
CREDENTIAL_PROCESS = inline_serializer(
    "CredentialProcess",
    {
        "Version": serializers.IntegerField(),
        "AccessKeyId": serializers.CharField(),
        "SecretAccessKey": serializers.CharField(),
        "SessionToken": serializers.CharField(),
        "Expiration": serializers.DateTimeField(),
    },
)


class MintThrottle(UserRateThrottle):
    scope = "mint"


@extend_schema(
    request=None,
    responses={200: CREDENTIAL_PROCESS},
)
@api_view(["POST"])
@throttle_classes([MintThrottle])
def grant_credentials(request: Request, grant_id: int) -> Response:
    """Mint short-lived credentials for an active grant you hold, as `credential_process` JSON."""
    grant = grant_for_user(acting_user(request), grant_id)
    try:
        minted = minting.credential_mint(
            grant_id=grant.pk,
            user=acting_user(request),
            kind=CredentialIssue.Kind.CLI,
            source_ip=client_ip(request),
        )
    except minting.GrantNotUsable as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    except aws.AwsUnavailable as exc:
        return Response(
            {"detail": f"{exc} Try again in a moment."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
        )
    except aws.AwsRejected as exc:
        return Response(
            {"detail": f"AWS refused to issue credentials: {exc}"}, status=status.HTTP_502_BAD_GATEWAY
        )
    response = Response(minted.credential_process())
    response["Cache-Control"] = "no-store"
    return response
