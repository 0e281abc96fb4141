"""Business actions on partners, their IdPs and memberships. Each writes its audit event in its transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from partners.models import IdentityProvider, Membership, Partner, PartnerDomain
from portal import aws
from portal.audit import audit_record
from portal.crypto import encrypt
from portal.models import User


@transaction.atomic
def partner_create(
    *, name: str, slug: str, domains: list[str], aws_region: str = "eu-west-1", actor: User | None = None
) -> Partner:
    partner = Partner.objects.create(name=name, slug=slug, aws_region=aws_region)
    for domain in domains:
        PartnerDomain.objects.create(partner=partner, domain=domain.strip().lower())
    audit_record(
        action="partner.created",
        obj=partner,
        actor=actor,
        partner_id=partner.pk,
        data={"slug": slug, "domains": sorted(domains)},
    )
    return partner


@transaction.atomic
def partner_activate(*, partner: Partner, actor: User | None = None) -> Partner:
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    if partner.status != Partner.Status.ACTIVE:
        previous = partner.status
        partner.status = Partner.Status.ACTIVE
        partner.save(update_fields=["status"])
        audit_record(
            action="partner.activated",
            obj=partner,
            actor=actor,
            partner_id=partner.pk,
            data={"from": previous},
        )
    return partner


def partner_account_provision(
    *, partner: Partner, email: str, actor: User | None = None, timeout: float = 60.0
) -> Partner:
    """Give the partner its dedicated AWS account (Organizations CreateAccount), once.

    Idempotent: a partner that has an account keeps it; an account that AWS already created under the same
    email (a crash between CreateAccount and the save) is adopted rather than created twice.
    """
    if partner.aws_account_id:
        return partner
    orgs = aws.management_client("organizations")
    with aws.aws_errors():
        account_id = _existing_account_id(orgs, email)
        if account_id is None:
            status_id = orgs.create_account(
                Email=email,
                AccountName=f"porte-{partner.slug}",
                Tags=[{"Key": "porte:partner", "Value": partner.slug}],
            )["CreateAccountStatus"]["Id"]
            result: dict[str, Any] = {}

            def _done() -> bool:
                result.update(
                    orgs.describe_create_account_status(CreateAccountRequestId=status_id)[
                        "CreateAccountStatus"
                    ]
                )
                return result["State"] != "IN_PROGRESS"

            if not aws.wait_until(_done, timeout=timeout):
                raise aws.AwsUnavailable("Account creation is still in progress; it will be resumed.")
            if result["State"] != "SUCCEEDED":
                raise aws.AwsRejected("CreateAccountFailed", str(result.get("FailureReason", "unknown")))
            account_id = result["AccountId"]
    with transaction.atomic():
        partner = Partner.objects.select_for_update().get(pk=partner.pk)
        partner.aws_account_id = account_id
        partner.save(update_fields=["aws_account_id"])
        audit_record(
            action="partner.account_provisioned",
            obj=partner,
            actor=actor,
            partner_id=partner.pk,
            data={"aws_account_id": account_id},
        )
    return partner


def _existing_account_id(orgs: Any, email: str) -> str | None:
    for page in orgs.get_paginator("list_accounts").paginate():
        for account in page["Accounts"]:
            if account["Email"].lower() == email.lower():
                return str(account["Id"])
    return None


@transaction.atomic
def identity_provider_create_oidc(
    *,
    partner: Partner,
    provider_id: str,
    display_name: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    actor: User | None = None,
) -> IdentityProvider:
    idp = IdentityProvider.objects.create(
        partner=partner,
        provider_id=provider_id,
        display_name=display_name,
        issuer=issuer.rstrip("/"),
        client_id=client_id,
        client_secret_encrypted=encrypt(client_secret),
    )
    # The secret itself is never audited.
    audit_record(
        action="idp.created",
        obj=idp,
        actor=actor,
        partner_id=partner.pk,
        data={"provider_id": provider_id, "issuer": idp.issuer, "client_id": client_id},
    )
    return idp


@transaction.atomic
def membership_create_on_first_sign_in(
    *, user: User, identity_provider: IdentityProvider, groups: list[str]
) -> Membership:
    membership = Membership.objects.create(
        user=user,
        partner=identity_provider.partner,
        identity_provider=identity_provider,
        groups=sorted(set(groups)),
        last_sign_in_at=timezone.now(),
    )
    audit_record(
        action="membership.created",
        obj=membership,
        actor=user,
        partner_id=membership.partner_id,
        data={"provider_id": identity_provider.provider_id, "groups": membership.groups},
    )
    return membership


@transaction.atomic
def membership_record_sign_in(*, membership: Membership, groups: list[str]) -> Membership:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    new_groups = sorted(set(groups))
    changed = new_groups != membership.groups
    membership.groups = new_groups
    membership.last_sign_in_at = timezone.now()
    membership.save(update_fields=["groups", "last_sign_in_at"])
    audit_record(
        action="membership.signed_in",
        obj=membership,
        actor=membership.user,
        partner_id=membership.partner_id,
        data={"groups": new_groups} if changed else {},
    )
    return membership


@transaction.atomic
def sign_in_refuse(
    *, identity_provider: IdentityProvider | None, provider_id: str, reason: str, subject: str = ""
) -> None:
    """Record a refused partner sign-in (it feeds the "unauthorised access attempts" metric)."""
    audit_record(
        action="signin.refused",
        obj=identity_provider,
        partner_id=identity_provider.partner_id if identity_provider else None,
        data={"provider_id": provider_id, "reason": reason, "subject": subject[:128]},
    )


BOUNDARY_POLICY_NAME = "porte-boundary"


def boundary_policy_document() -> dict[str, Any]:
    """Ceiling for every scoped role in a partner account: whatever a role's own policy says, it can never
    touch identity, the organisation, or the audit trail that watches it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AllowWithinBoundary", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Sid": "DenyGuardrailChanges",
                "Effect": "Deny",
                "Action": [
                    "iam:*",
                    "organizations:*",
                    "account:*",
                    "sts:AssumeRole",
                    "cloudtrail:StopLogging",
                    "cloudtrail:DeleteTrail",
                    "cloudtrail:UpdateTrail",
                    "cloudtrail:PutEventSelectors",
                    "ec2:DeleteFlowLogs",
                ],
                "Resource": "*",
            },
        ],
    }


def partner_boundary_ensure(*, partner: Partner) -> str:
    """Create the partner account's permissions boundary policy if missing; return its ARN. Idempotent."""
    import json

    if not partner.aws_account_id:
        raise aws.AwsRejected("NoAccount", f"Partner {partner.slug} has no dedicated AWS account yet.")
    arn = f"arn:aws:iam::{partner.aws_account_id}:policy/{BOUNDARY_POLICY_NAME}"
    iam = aws.partner_client("iam", partner.aws_account_id)
    with aws.aws_errors():
        try:
            iam.get_policy(PolicyArn=arn)
        except iam.exceptions.NoSuchEntityException:
            iam.create_policy(
                PolicyName=BOUNDARY_POLICY_NAME,
                PolicyDocument=json.dumps(boundary_policy_document()),
                Description="Porte permissions boundary for partner scoped roles",
            )
    return arn


def organization_ensure() -> str:
    """The AWS Organization partner accounts are vended into; created when the management account has none."""
    orgs = aws.management_client("organizations")
    with aws.aws_errors():
        try:
            return str(orgs.describe_organization()["Organization"]["Id"])
        except orgs.exceptions.AWSOrganizationsNotInUseException:
            return str(orgs.create_organization(FeatureSet="ALL")["Organization"]["Id"])
