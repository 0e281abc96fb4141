"""Pipelines over the API: the exchange (no Porte credential: the CI's OIDC token is the credential), and their
registration (partner admins, staff), approval (staff, another one) and disabling."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.generics import ListCreateAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from grants.api import CREDENTIAL_PROCESS
from grants.models import Role
from portal import aws
from portal.access import acting_user, actor_of, public, scoped
from portal.http import client_ip
from portal.responses import error_detail
from workloads import exchange, services
from workloads.models import Workload


class WorkloadSerializer(serializers.ModelSerializer):
    partner: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    role: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    reference = serializers.CharField(read_only=True, help_text="What the pipeline sends as `workload`.")
    span_minutes = serializers.SerializerMethodField()

    class Meta:
        model = Workload
        fields = [
            "id",
            "reference",
            "partner",
            "name",
            "role",
            "issuer",
            "audience",
            "claims",
            "span_minutes",
            "status",
            "approved_at",
            "last_exchange_at",
            "created_at",
        ]

    def get_span_minutes(self, workload: Workload) -> int:
        return int(workload.span.total_seconds() // 60)


class WorkloadInput(serializers.Serializer):
    partner = serializers.SlugField(
        max_length=40, required=False, help_text="Staff only; a partner admin's own."
    )
    name = serializers.SlugField(max_length=48)
    role = serializers.SlugField(max_length=64)
    issuer = serializers.URLField(max_length=500, help_text="The CI's OIDC issuer.")
    audience = serializers.CharField(max_length=255, help_text="The audience the pipeline asks its CI for.")
    claims = serializers.DictField(
        child=serializers.CharField(max_length=255), help_text="Claim → the exact value the token must carry."
    )
    span_minutes = serializers.IntegerField(min_value=15, max_value=60, default=15)


def _visible(request: Request) -> QuerySet[Workload]:
    actor = actor_of(request.user)
    queryset = Workload.objects.select_related("partner", "role")
    if not (actor.is_staff or actor.is_partner_admin):
        return queryset.none()
    return scoped(queryset, request.user, partner="partner_id", owner=None)


def _refused(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(error_detail(exc))


class WorkloadList(ListCreateAPIView):
    """Your organisation's pipelines (partner admins) or every partner's (staff); register one with POST."""

    serializer_class = WorkloadSerializer

    def get_queryset(self) -> QuerySet[Workload]:
        return _visible(self.request).order_by("partner__slug", "name")

    @extend_schema(request=WorkloadInput, responses={201: WorkloadSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = WorkloadInput(data=request.data)
        data.is_valid(raise_exception=True)
        actor = actor_of(request.user)
        roles = Role.objects.select_related("partner").filter(slug=data.validated_data["role"])
        if actor.is_staff:
            roles = roles.filter(partner__slug=data.validated_data.get("partner", ""))
        else:
            roles = (
                roles.filter(partner__memberships__user=acting_user(request))
                if actor.is_partner_admin
                else roles.none()
            )
        role = roles.first()
        if role is None:
            raise ValidationError({"role": "No such role for this partner."})
        try:
            workload = services.workload_register(
                partner=role.partner,
                name=data.validated_data["name"],
                role=role,
                issuer=data.validated_data["issuer"],
                audience=data.validated_data["audience"],
                claims=data.validated_data["claims"],
                span=timedelta(minutes=data.validated_data["span_minutes"]),
                actor=acting_user(request),
            )
        except DjangoPermissionDenied as denied:
            raise PermissionDenied(str(denied)) from None
        except DjangoValidationError as invalid:
            raise _refused(invalid) from None
        return Response(WorkloadSerializer(workload).data, status=status.HTTP_201_CREATED)


def _workload(request: Request, workload_id: int) -> Workload:
    workload = _visible(request).filter(pk=workload_id).first()
    if workload is None:
        raise Http404("No such pipeline.")
    return workload


@extend_schema(request=None, responses={200: WorkloadSerializer})
@api_view(["POST"])
def workload_approve(request: Request, workload_id: int) -> Response:
    """Approve a pipeline another staff member (or the partner) registered (staff)."""
    try:
        workload = services.workload_approve(
            workload=_workload(request, workload_id), actor=acting_user(request)
        )
    except DjangoPermissionDenied as denied:
        raise PermissionDenied(str(denied)) from None
    except DjangoValidationError as invalid:
        raise _refused(invalid) from None
    return Response(WorkloadSerializer(workload).data)


@extend_schema(request=None, responses={200: WorkloadSerializer})
@api_view(["POST"])
def workload_disable(request: Request, workload_id: int) -> Response:
    """Disable a pipeline for good: its open grant is revoked with the deny (partner admins, staff)."""
    workload = services.workload_disable(
        workload=_workload(request, workload_id), reason="disabled over the API", actor=acting_user(request)
    )
    return Response(WorkloadSerializer(workload).data)


class ExchangeThrottle(AnonRateThrottle):
    rate = "120/minute"


class ExchangeInput(serializers.Serializer):
    workload = serializers.CharField(max_length=120, help_text="`<partner>/<name>`, as registered.")
    token = serializers.CharField(
        max_length=exchange.MAX_TOKEN_BYTES, help_text="The CI's OIDC token (a JWT)."
    )


@extend_schema(
    request=ExchangeInput,
    responses={200: CREDENTIAL_PROCESS},
    auth=[],
)
@public  # the CI's token is the credential: no session, no personal token, whoever holds one
@api_view(["POST"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([ExchangeThrottle])
def workload_exchange(request: Request) -> Response:
    """Exchange a pipeline's OIDC token for short STS credentials on its workload's role (`credential_process`
    JSON). A refusal says only that the token was refused; the audit names the check that failed."""
    data = ExchangeInput(data=request.data)
    data.is_valid(raise_exception=True)
    try:
        minted = exchange.workload_exchange(
            reference=data.validated_data["workload"],
            token=data.validated_data["token"],
            source_ip=client_ip(request),
        )
    except exchange.ExchangeRefused:
        return Response(
            {"detail": "The token was refused for this pipeline. Ask the partner's Porte administrator."},
            status=status.HTTP_401_UNAUTHORIZED,
        )
    except exchange.IssuerUnavailable:
        return Response(
            {"detail": "The pipeline's OIDC issuer cannot be reached just now; try again in a minute."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    except aws.AwsUnavailable as exc:
        return Response(
            {"detail": f"{exc} Try again in a moment."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
        )
    response = Response(minted.credential_process())
    response["Cache-Control"] = "no-store"
    return response
