"""Seed the demo: partner Acme with its OIDC IdP, a dedicated account in the local AWS, a scoped role, and a
staff admin. Idempotent: running it again changes nothing that exists."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from allauth.mfa.totp.internal.auth import TOTP
from django.core.management.base import BaseCommand
from django.db import transaction

from grants import provisioning, services
from grants.models import Role
from partners import services as partner_services
from partners.models import IdentityProvider, Partner
from portal.audit import audit_record
from portal.models import User

READ_ONLY_POLICY: dict[str, object] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadOnlyInventory",
            "Effect": "Allow",
            "Action": [
                "ec2:Describe*",
                "s3:ListAllMyBuckets",
                "s3:GetBucketLocation",
                "cloudwatch:GetMetricData",
                "logs:DescribeLogGroups",
            ],
            "Resource": "*",
        }
    ],
}


class Command(BaseCommand):
    help = "Seed the demo partner, IdP, role and staff admin; vend and provision them in the local AWS."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--issuer", required=True, help="Issuer URL of Acme's OIDC IdP")
        parser.add_argument("--client-id", default="porte-demo")
        parser.add_argument("--client-secret", required=True)
        parser.add_argument("--admin-password", required=True)
        parser.add_argument(
            "--admin-totp-secret", required=True, help="Base32 TOTP secret for the admin's MFA"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        admin = User.objects.filter(username="admin").first()
        if admin is None:
            with transaction.atomic():
                admin = User.objects.create_superuser(
                    "admin",
                    "admin@porte.invalid",
                    options["admin_password"],
                    first_name="Porte",
                    last_name="Admin",
                )
                audit_record(action="user.created", obj=admin, data={"staff": True})
                TOTP.activate(admin, options["admin_totp_secret"])
        partner = Partner.objects.filter(slug="acme").first()
        if partner is None:
            partner = partner_services.partner_create(
                name="Acme Corp", slug="acme", domains=["acme.example"], sponsor=admin, actor=admin
            )
        if not IdentityProvider.objects.filter(partner=partner).exists():
            partner_services.identity_provider_create_oidc(
                partner=partner,
                provider_id="acme",
                display_name="Acme Corp sign-in",
                issuer=options["issuer"],
                client_id=options["client_id"],
                client_secret=options["client_secret"],
                actor=admin,
            )
        partner_services.organization_ensure()
        partner = partner_services.partner_account_provision(
            partner=partner, email="aws+acme@partners.porte.invalid", actor=admin
        )
        boundary = partner_services.partner_boundary_ensure(partner=partner)
        partner = partner_services.partner_activate(partner=partner, actor=admin)
        role = Role.objects.filter(partner=partner, slug="readonly").first() or services.role_create(
            partner=partner,
            slug="readonly",
            name="Read-only inventory",
            inline_policy=READ_ONLY_POLICY,
            description="Describe EC2 and list S3 buckets in Acme's account.",
            permissions_boundary_arn=boundary,
            max_duration=timedelta(hours=2),
            eligible_groups=["engineers"],
            actor=admin,
        )
        provisioning.role_provision(role=role, actor=admin)
        _ensure_trail_bucket()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: partner {partner.slug} (AWS account {partner.aws_account_id}), role {role.aws_role_arn}"
            )
        )


def _ensure_trail_bucket() -> None:
    """The organisation trail's bucket (moto emits no CloudTrail records; the bucket lets ingestion run)."""
    from django.conf import settings

    from portal import aws

    s3 = aws.management_client("s3")
    with aws.aws_errors():
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if settings.ACTIVITY_TRAIL_BUCKET not in existing:
            s3.create_bucket(
                Bucket=settings.ACTIVITY_TRAIL_BUCKET,
                CreateBucketConfiguration={"LocationConstraint": settings.AWS_REGION},
            )
