"""REST API v1 for requests and their decisions: the same services as the pages, scoped by the same seam."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from approvals import services as approvals
from approvals.access import request_for_user
from approvals.context import Evidence
from grants import limits
from grants.api import GrantSerializer
from grants.models import AccessRequest
from grants.selectors import roles_requestable_by
from portal.access import acting_user
from portal.http import client_ip
from portal.responses import error_detail, service_errors


class AccessRequestInput(serializers.Serializer):
    role = serializers.SlugField(max_length=48, help_text="Slug of a role you are eligible for.")
    justification = serializers.CharField(max_length=limits.TEXT_MAX_CHARS)
    duration_minutes = serializers.IntegerField(
        min_value=limits.REQUEST_MIN_MINUTES,
        max_value=limits.ROLE_MAX_MINUTES,
        error_messages={"min_value": limits.SHORTEST_REQUEST},
    )
    break_glass = serializers.BooleanField(
        default=False,
        help_text="Emergency access without approval, where the role allows it (loud, reviewed).",
    )


class AccessRequestSerializer(serializers.ModelSerializer):
    role = serializers.CharField(source="role.slug", read_only=True)
    partner = serializers.CharField(source="role.partner.slug", read_only=True)
    requester = serializers.UUIDField(source="requester.public_id", read_only=True)
    approvals = serializers.SerializerMethodField()

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "role",
            "partner",
            "requester",
            "status",
            "justification",
            "created_at",
            "expires_at",
            "decided_at",
            "decision_reason",
            "is_break_glass",
            "approvals",
        ]
        read_only_fields = fields

    def get_approvals(self, request: AccessRequest) -> int:
        return request.approvals.count()


class DenyInput(serializers.Serializer):
    reason = serializers.CharField(max_length=limits.TEXT_MAX_CHARS)


@extend_schema(request=AccessRequestInput, responses={201: GrantSerializer, 202: AccessRequestSerializer})
@api_view(["POST"])
def access_request_create(request: Request) -> Response:
    """Request a role for a duration, with a justification. Approved requests start activating at once (201, the
    grant); requests that wait for approvers answer 202 with the request. A failed condition (access window,
    network, MFA, device posture) answers 400 naming it under `context`."""
    data = AccessRequestInput(data=request.data)
    data.is_valid(raise_exception=True)
    role = roles_requestable_by(acting_user(request)).filter(slug=data.validated_data["role"]).first()
    if role is None:
        raise ValidationError({"role": ["You are not eligible for a role with this slug."]})
    try:
        created = approvals.request_create(
            requester=acting_user(request),
            role=role,
            justification=data.validated_data["justification"],
            duration=timedelta(minutes=data.validated_data["duration_minutes"]),
            evidence=Evidence.from_session(getattr(request, "session", None), client_ip(request)),
            break_glass=data.validated_data["break_glass"],
        )
    except DjangoValidationError as exc:
        # Name the fields as the caller sent them (the service speaks of `duration`, the API of minutes).
        errors = service_errors(exc, {"duration": "duration_minutes"})
        raise ValidationError(
            {field or "non_field_errors": messages for field, messages in errors.items()}
        ) from exc
    if created.status == AccessRequest.Status.PENDING:
        return Response(AccessRequestSerializer(created).data, status=status.HTTP_202_ACCEPTED)
    return Response(GrantSerializer(created.grant).data, status=status.HTTP_201_CREATED)


def _decision(request: Request, request_id: int, decide: Callable[[int], AccessRequest]) -> Response:
    access_request = request_for_user(acting_user(request), request_id)
    try:
        decided = decide(access_request.pk)
    except approvals.NotAnApprover:
        return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    except approvals.SelfApprovalRefused as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_403_FORBIDDEN)
    except DjangoValidationError as exc:
        detail = error_detail(exc)
        return Response(detail, status=status.HTTP_409_CONFLICT if "detail" in detail else 400)
    return Response(AccessRequestSerializer(decided).data)


@extend_schema(request=None, responses={200: AccessRequestSerializer})
@api_view(["POST"])
def access_request_approve(request: Request, request_id: int) -> Response:
    """Approve a pending request you are an approver of (never your own). Once enough distinct people have
    approved, the grant starts activating."""
    return _decision(
        request,
        request_id,
        lambda pk: approvals.request_approve(request_id=pk, approver=acting_user(request)),
    )


@extend_schema(request=DenyInput, responses={200: AccessRequestSerializer})
@api_view(["POST"])
def access_request_deny(request: Request, request_id: int) -> Response:
    """Deny a pending request you are an approver of, with a reason the requester is told."""
    data = DenyInput(data=request.data)
    data.is_valid(raise_exception=True)
    return _decision(
        request,
        request_id,
        lambda pk: approvals.request_deny(
            request_id=pk, approver=acting_user(request), reason=data.validated_data["reason"]
        ),
    )
