"""Staff API for onboarding partners and their IdPs: the same services and validation as the console."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from partners import federation, idp_validation, services
from partners.forms import PartnerForm
from partners.models import IdentityProvider, Partner
from partners.selectors import shared_idp_warning
from portal.access import acting_user, actor_of


class IsStaff(permissions.BasePermission):
    message = "Porte staff only."

    def has_permission(self, request: Any, view: Any) -> bool:
        actor = actor_of(request.user)
        return actor.is_staff and actor.in_standing


class IdentityProviderSerializer(serializers.ModelSerializer):
    registration = serializers.SerializerMethodField(
        help_text="What the partner must configure on their side."
    )

    class Meta:
        model = IdentityProvider
        fields = [
            "provider_id",
            "protocol",
            "display_name",
            "issuer",
            "client_id",
            "saml_entity_id",
            "saml_sso_url",
            "certificate_not_after",
            "certificate_warning",
            "claim_mapping",
            "is_enabled",
            "verified_at",
            "registration",
        ]

    def get_registration(self, idp: IdentityProvider) -> dict[str, str]:
        return federation.registration_details(idp)


class PartnerSerializer(serializers.ModelSerializer):
    domains: serializers.SlugRelatedField = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="domain"
    )
    identity_providers = IdentityProviderSerializer(many=True, read_only=True)

    class Meta:
        model = Partner
        fields = [
            "slug",
            "name",
            "status",
            "aws_account_id",
            "aws_region",
            "enforce_email_domains",
            "sensitive",
            "domains",
            "identity_providers",
            "created_at",
        ]


class PartnerList(ListAPIView):
    """Every partner, with its IdP (staff)."""

    serializer_class = PartnerSerializer
    permission_classes = [IsStaff]
    queryset = Partner.objects.prefetch_related("domains", "identity_providers")


class PartnerInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    slug = serializers.SlugField(max_length=40)
    domains = serializers.ListField(child=serializers.CharField(max_length=253), min_length=1, max_length=50)
    aws_region = serializers.CharField(max_length=32, default="eu-west-1")
    enforce_email_domains = serializers.BooleanField(default=True)
    sensitive = serializers.BooleanField(default=False, help_text="Activating it takes two staff members.")


@extend_schema(request=PartnerInput, responses={201: PartnerSerializer})
@api_view(["POST"])
@permission_classes([IsStaff])
def partner_create(request: Request) -> Response:
    """Onboard a partner (status `onboarding`); the caller becomes its sponsor."""
    data = PartnerInput(data=request.data)
    data.is_valid(raise_exception=True)
    form = PartnerForm(
        {
            **data.validated_data,
            "domains": " ".join(data.validated_data["domains"]),
            "sponsor": request.user.pk,
        }
    )
    if not form.is_valid():
        raise ValidationError({field: [str(e) for e in errors] for field, errors in form.errors.items()})
    partner = services.partner_create(actor=acting_user(request), **form.cleaned_data)
    return Response(PartnerSerializer(partner).data, status=status.HTTP_201_CREATED)


class IdpInput(serializers.Serializer):
    protocol = serializers.ChoiceField(choices=IdentityProvider.Protocol.choices)
    display_name = serializers.CharField(max_length=120)
    issuer = serializers.URLField(required=False, max_length=200, help_text="OIDC")
    client_id = serializers.CharField(required=False, max_length=255, help_text="OIDC")
    client_secret = serializers.CharField(required=False, max_length=2000, write_only=True, help_text="OIDC")
    metadata_url = serializers.URLField(required=False, max_length=1024, help_text="SAML: metadata URL …")
    metadata_xml = serializers.CharField(
        required=False,
        max_length=idp_validation.MAX_DOCUMENT_BYTES,
        help_text="SAML: … or the metadata document",
    )
    claim_mapping = serializers.DictField(required=False, default=dict)


@extend_schema(request=IdpInput, responses={201: IdentityProviderSerializer})
@api_view(["POST"])
@permission_classes([IsStaff])
def identity_provider_create(request: Request, slug: str) -> Response:
    """Add the partner's IdP after validating it (OIDC discovery, or SAML metadata and certificate)."""
    partner = Partner.objects.filter(slug=slug).first()
    if partner is None:
        return Response({"detail": "No such partner."}, status=status.HTTP_404_NOT_FOUND)
    if partner.identity_providers.exists():
        raise ValidationError(
            {"protocol": ["This partner has an IdP already; rotate its secret or metadata."]}
        )
    data = IdpInput(data=request.data)
    data.is_valid(raise_exception=True)
    v, actor = data.validated_data, acting_user(request)
    try:
        if v["protocol"] == IdentityProvider.Protocol.OIDC:
            missing = [k for k in ("issuer", "client_id", "client_secret") if not v.get(k)]
            if missing:
                raise ValidationError({k: ["Required for OpenID Connect."] for k in missing})
            # The issuer as discovery confirmed it (a pasted discovery document URL is stored as its issuer).
            issuer = idp_validation.oidc_discover(v["issuer"]).issuer
            idp = services.identity_provider_create_oidc(
                partner=partner,
                provider_id=partner.slug,
                display_name=v["display_name"],
                issuer=issuer,
                client_id=v["client_id"],
                client_secret=v["client_secret"],
                claim_mapping=v["claim_mapping"],
                actor=actor,
            )
        else:
            if bool(v.get("metadata_url")) == bool(v.get("metadata_xml")):
                raise ValidationError({"metadata_url": ["Give either metadata_url or metadata_xml."]})
            raw = (
                idp_validation.fetch(v["metadata_url"], "metadata")
                if v.get("metadata_url")
                else v["metadata_xml"]
            )
            idp = services.identity_provider_create_saml(
                partner=partner,
                provider_id=partner.slug,
                display_name=v["display_name"],
                metadata=idp_validation.saml_metadata_parse(raw),
                metadata_url=v.get("metadata_url", ""),
                claim_mapping=v["claim_mapping"],
                actor=actor,
            )
    except idp_validation.IdpConfigError as exc:
        raise ValidationError({"detail": str(exc)}) from exc
    warning = shared_idp_warning(idp)
    body = {**IdentityProviderSerializer(idp).data, "warnings": [warning] if warning else []}
    return Response(body, status=status.HTTP_201_CREATED)
