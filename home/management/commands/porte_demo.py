"""Seed the demo: partner Acme with its OIDC IdP, a dedicated account in the local AWS, a staff admin, and the
story of home.demo_seed (people, roles, grants with activity, a pending request, a review).
Idempotent: running it again changes nothing that exists."""

from __future__ import annotations

from typing import Any

from allauth.mfa.totp.internal.auth import TOTP
from django.core.management.base import BaseCommand
from django.db import transaction

from directory import services as directory_services
from home import demo_seed
from partners import services as partner_services
from partners.models import IdentityProvider, Partner
from partners.network import partner_network_ensure
from portal.audit import audit_record
from portal.models import User


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
        parser.add_argument("--carol-password", help="Lets Carol, the second staff member, sign in")
        parser.add_argument("--carol-totp-secret", help="Base32 TOTP secret for Carol's MFA")
        parser.add_argument(
            "--invitation-link-file", help="Where to write the link of Globex's onboarding invitation"
        )
        parser.add_argument(
            "--scim-token-file", help="Where to write Acme's SCIM token (made anew at every seed)"
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
        partner_network_ensure(partner_id=partner.pk)
        boundary = partner_services.partner_boundary_ensure(partner=partner)
        if partner.status != Partner.Status.ACTIVE:
            # Every onboarding step is done but the IdP's test sign-in, which needs a staff member in a browser.
            partner = partner_services.partner_activate(
                partner=partner,
                actor=admin,
                exception_reason="Demo seed: Acme's IdP is the demo IdP that make run starts; its test sign-in "
                "can be run from the partner page.",
            )
        world = demo_seed.story_seed(partner, boundary, admin=admin)
        if options.get("carol_password") and options.get("carol_totp_secret"):
            demo_seed.staff_sign_in_enable(
                "carol", password=options["carol_password"], totp_secret=options["carol_totp_secret"]
            )
        link = demo_seed.second_partner_seed(admin=admin)
        if link and options.get("invitation_link_file"):
            with open(options["invitation_link_file"], "w") as out:
                out.write(link + "\n")
        if options.get("scim_token_file"):
            # Acme's directory: its token exists only now, so the demo writes it where `make run` prints it.
            _connection, token = directory_services.directory_token_rotate(partner=partner, actor=admin)
            with open(options["scim_token_file"], "w") as out:
                out.write(token + "\n")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: partner {partner.slug} (AWS account {partner.aws_account_id}), "
                f"roles {', '.join(r.slug for r in (world.readonly, world.deploy, world.incident))}"
            )
        )
