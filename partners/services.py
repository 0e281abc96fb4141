"""Business actions on partners, their IdPs and memberships. Each writes its audit event in its transaction."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, QuerySet
from django.utils import timezone

from partners import aws_account, idp_validation
from partners.models import IdentityProvider, Membership, Partner, PartnerDomain
from partners.selectors import baseline_steps
from partners.windows import validate_window
from portal import aws
from portal.audit import audit_record
from portal.crypto import encrypt
from portal.models import User


@transaction.atomic
def partner_create(
    *,
    name: str,
    slug: str,
    domains: list[str],
    aws_region: str = "eu-west-1",
    sponsor: User | None = None,
    enforce_email_domains: bool = True,
    sensitive: bool = False,
    actor: User | None = None,
) -> Partner:
    partner = Partner.objects.create(
        name=name,
        slug=slug,
        aws_region=aws_region,
        sponsor=sponsor,
        enforce_email_domains=enforce_email_domains,
        sensitive=sensitive,
    )
    for domain in domains:
        PartnerDomain.objects.create(partner=partner, domain=domain.strip().lower())
    audit_record(
        action="partner.created",
        obj=partner,
        actor=actor,
        partner_id=partner.pk,
        data={"slug": slug, "domains": sorted(domains), "sensitive": sensitive},
    )
    return partner


def activation_missing(partner: Partner) -> list[str]:
    """What stands between the partner and activation, in words for staff (empty: ready)."""
    missing = []
    idp = partner.identity_providers.first()
    if idp is None or not idp.is_enabled:
        missing.append("The partner has no enabled identity provider.")
    elif not idp.is_verified:
        missing.append("Its identity provider has not passed a test sign-in with its current configuration.")
    if not partner.aws_account_id:
        missing.append("Its dedicated AWS account is not provisioned.")
    unfinished = [
        step.get_name_display() for step in baseline_steps(partner) if step.status != step.Status.DONE
    ]
    if unfinished:
        missing.append("Its account and network baseline is not complete: " + ", ".join(unfinished) + ".")
    return missing


@transaction.atomic
@transaction.atomic
def partner_activate(*, partner: Partner, actor: User | None = None, exception_reason: str = "") -> Partner:
    """Let the partner's people in. Only once its IdP passed a test sign-in with its current configuration and its
    account and network baseline is in place — or with an explicit exception, whose reason is audited.

    A sensitive partner takes two staff members: the first one's activation is recorded as an approval (the
    partner stays as it is), and a second, different one activates it. Each activation needs a new pair."""
    partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
    if partner.status == Partner.Status.OFFBOARDED:
        raise ValidationError({"partner": "An offboarded partner cannot be reactivated."})
    if partner.status == Partner.Status.ACTIVE:
        return partner
    missing = activation_missing(partner)
    reason = exception_reason.strip()
    if missing and not reason:
        raise ValidationError({"partner": missing})
    if partner.sensitive:
        if actor is None:
            raise ValidationError(
                {"approver": f"{partner.name} is sensitive: two staff members activate it."}
            )
        if partner.activation_approved_by_id is None:
            partner.activation_approved_by, partner.activation_approved_at = actor, timezone.now()
            partner.save(update_fields=["activation_approved_by", "activation_approved_at"])
            audit_record(
                action="partner.activation_approved",
                obj=partner,
                actor=actor,
                partner_id=partner.pk,
                data={"missing": missing, "reason": reason[:500]},
            )
            return partner
        if partner.activation_approved_by_id == actor.pk:
            raise ValidationError(
                {
                    "approver": f"You approved {partner.name}'s activation already: a second staff member activates it."
                }
            )
        partner.activation_approved_by, partner.activation_approved_at = None, None
        partner.save(update_fields=["activation_approved_by", "activation_approved_at"])
    if missing:
        audit_record(
            action="partner.activation_exception",
            obj=partner,
            actor=actor,
            partner_id=partner.pk,
            data={"missing": missing, "reason": reason[:500]},
        )
    return partner_set_status(partner=partner, status=Partner.Status.ACTIVE, reason="activated", actor=actor)


def partner_account_provision(
    *, partner: Partner, email: str, actor: User | None = None, timeout: float = 60.0
) -> Partner:
    """Give the partner its dedicated AWS account (Organizations CreateAccount) in the Partners OU with its
    guardrails, waiting for AWS. Resumable and idempotent: see `partners.aws_account`."""
    return aws_account.partner_account_provision(partner=partner, email=email, actor=actor, timeout=timeout)


@transaction.atomic
def identity_provider_create_oidc(
    *,
    partner: Partner,
    provider_id: str,
    display_name: str,
    issuer: str,
    client_id: str,
    client_secret: str,
    claim_mapping: dict[str, Any] | None = None,
    actor: User | None = None,
) -> IdentityProvider:
    idp = IdentityProvider.objects.create(
        partner=partner,
        provider_id=provider_id,
        claim_mapping=claim_mapping or {},
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


_USERNAME = re.compile(r"[\w.@+-]+")


def partner_username(*, provider_id: str, subject: str) -> str:
    """A partner person's internal username, derived from their identity (IdP, subject), never from an e-mail
    address. Only characters Django's username validator accepts (allauth would otherwise replace it)."""
    identity = f"{provider_id}.{subject}"
    if len(identity) > 150 or not _USERNAME.fullmatch(identity):
        identity = f"{provider_id[:80]}.{hashlib.sha256(identity.encode()).hexdigest()}"
    return identity


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


class SignInRefused(Exception):
    """A known person's sign-in that their membership does not allow; `reason` is what the refusal records."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@transaction.atomic
def membership_record_sign_in(
    *,
    user: User,
    identity_provider: IdentityProvider,
    groups: list[str] | None,
    email: str = "",
    name: str = "",
) -> Membership:
    """A known person signed in again through `identity_provider`. Their membership is read once, locked, and must
    allow the sign-in, or SignInRefused is raised with nothing written: the asserted email in the partner's domains
    (when the partner enforces them), the membership the IdP's partner's, the person not staff, and both user and
    membership active. Then groups are refreshed (None: they come from the partner's directory, not from sign-ins)
    and display attributes (a changed email at the IdP keeps the same Porte user, since identity is the subject)."""
    partner = identity_provider.partner
    memberships = Membership.objects.select_for_update(no_key=True)
    if partner.enforce_email_domains:
        memberships = memberships.annotate(in_domains=Exists(_domains_matching(partner, email)))
    membership = memberships.filter(user_id=user.pk).first()
    if partner.enforce_email_domains and not (
        membership.in_domains  # type: ignore[attr-defined]  # the annotation above
        if membership is not None
        else email_in_partner_domains(partner, email)
    ):
        raise SignInRefused("email_outside_partner_domains")
    if user.is_staff or membership is None or membership.partner_id != partner.pk:
        raise SignInRefused("identity_partner_mismatch")
    if not user.is_active or not membership.is_active:
        raise SignInRefused("user_inactive")
    # The partner and IdP this request already holds, for what reads them next (the person's standing).
    membership.partner = partner
    if membership.identity_provider_id == identity_provider.pk:
        membership.identity_provider = identity_provider
    new_groups = membership.groups if groups is None else sorted(set(groups))
    changes: dict[str, Any] = {}
    if new_groups != membership.groups:
        changes["groups"] = new_groups
    if email and email != user.email:
        changes["email"] = email
        user.email = email
    renamed = bool(name) and name != user.get_full_name()
    if renamed:
        user.first_name, _, user.last_name = name.partition(" ")
    if renamed or "email" in changes:
        user.save(update_fields=["email", "first_name", "last_name"])
    membership.user = user
    membership.groups = new_groups
    membership.last_sign_in_at = timezone.now()
    membership.save(update_fields=["groups", "last_sign_in_at"])
    audit_record(
        action="membership.signed_in",
        obj=membership,
        actor=user,
        partner_id=membership.partner_id,
        data=changes,
    )
    return membership


def _domains_matching(partner: Partner, email: str) -> QuerySet[PartnerDomain]:
    domain = email.rpartition("@")[2].lower()
    return (
        PartnerDomain.objects.filter(partner_id=partner.pk, domain__iexact=domain)
        if domain
        else PartnerDomain.objects.none()
    )


def email_in_partner_domains(partner: Partner, email: str) -> bool:
    return _domains_matching(partner, email).exists()


@transaction.atomic
def sign_in_refuse(
    *,
    identity_provider: IdentityProvider | None,
    provider_id: str,
    reason: str,
    subject: str = "",
    detail: str = "",
) -> None:
    """Record a refused partner sign-in (it feeds the "unauthorised access attempts" metric)."""
    data = {"provider_id": provider_id, "reason": reason[:120], "subject": subject[:128]}
    if detail:
        data["detail"] = detail[:300]
    audit_record(
        action="signin.refused",
        obj=identity_provider,
        partner_id=identity_provider.partner_id if identity_provider else None,
        data=data,
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


def boundary_arn(partner: Partner) -> str:
    return f"arn:aws:iam::{partner.aws_account_id or 'ACCOUNT_ID'}:policy/{BOUNDARY_POLICY_NAME}"


def partner_boundary_ensure(*, partner: Partner) -> str:
    """Create the partner account's permissions boundary policy if missing; return its ARN. Idempotent."""
    import json

    if not partner.aws_account_id:
        raise aws.AwsRejected("NoAccount", f"Partner {partner.slug} has no dedicated AWS account yet.")
    arn = boundary_arn(partner)
    iam = aws.partner(partner.aws_account_id).iam
    try:
        iam.get_policy(PolicyArn=arn)
    except aws.AwsNotFound:
        iam.create_policy(
            PolicyName=BOUNDARY_POLICY_NAME,
            PolicyDocument=json.dumps(boundary_policy_document()),
            Description="Porte permissions boundary for partner scoped roles",
        )
    return arn


def organization_ensure() -> str:
    """The AWS Organization partner accounts are vended into; created when the management account has none."""
    return aws_account.organization_ensure()


# --- identity providers: onboarding, verification, rotation -------------------------------------------------------


@transaction.atomic
def identity_provider_create_saml(
    *,
    partner: Partner,
    provider_id: str,
    display_name: str,
    metadata: idp_validation.SamlIdpInfo,
    metadata_url: str = "",
    claim_mapping: dict[str, Any] | None = None,
    actor: User | None = None,
) -> IdentityProvider:
    idp = IdentityProvider.objects.create(
        partner=partner,
        provider_id=provider_id,
        protocol=IdentityProvider.Protocol.SAML,
        display_name=display_name,
        saml_entity_id=metadata.entity_id,
        saml_sso_url=metadata.sso_url,
        saml_slo_url=metadata.slo_url,
        saml_metadata_url=metadata_url,
        saml_certificates=metadata.certificates,
        certificate_not_after=metadata.certificate_not_after,
        claim_mapping=claim_mapping or {},
    )
    audit_record(
        action="idp.created",
        obj=idp,
        actor=actor,
        partner_id=partner.pk,
        data={
            "protocol": "saml",
            "entity_id": metadata.entity_id,
            "sso_url": metadata.sso_url,
            "certificate_not_after": metadata.certificate_not_after.isoformat(),
        },
    )
    return idp


@transaction.atomic
def identity_provider_rotate_oidc_secret(
    *, identity_provider: IdentityProvider, client_secret: str, actor: User | None = None
) -> IdentityProvider:
    """Swap the client secret in place: the next sign-in uses it; nothing restarts, no sign-in is cut."""
    idp = IdentityProvider.objects.select_for_update(of=("self",), no_key=True).get(pk=identity_provider.pk)
    idp.client_secret_encrypted = encrypt(client_secret)
    idp.save(update_fields=["client_secret_encrypted"])
    audit_record(action="idp.secret_rotated", obj=idp, actor=actor, partner_id=idp.partner_id, data={})
    return idp


@transaction.atomic
def identity_provider_update_saml_metadata(
    *, identity_provider: IdentityProvider, metadata: idp_validation.SamlIdpInfo, actor: User | None = None
) -> IdentityProvider:
    """New metadata from the partner (e.g. a certificate rollover). The entity id is pinned: a different one
    is a different IdP and must be onboarded as such."""
    idp = IdentityProvider.objects.select_for_update(of=("self",), no_key=True).get(pk=identity_provider.pk)
    if metadata.entity_id != idp.saml_entity_id:
        raise idp_validation.IdpConfigError(
            f"The metadata is for {metadata.entity_id!r}, not this IdP ({idp.saml_entity_id!r})."
        )
    idp.saml_sso_url, idp.saml_slo_url = metadata.sso_url, metadata.slo_url
    idp.saml_certificates = metadata.certificates
    idp.certificate_not_after = metadata.certificate_not_after
    idp.save(update_fields=["saml_sso_url", "saml_slo_url", "saml_certificates", "certificate_not_after"])
    audit_record(
        action="idp.metadata_updated",
        obj=idp,
        actor=actor,
        partner_id=idp.partner_id,
        data={
            "sso_url": metadata.sso_url,
            "certificate_not_after": metadata.certificate_not_after.isoformat(),
        },
    )
    return idp


@transaction.atomic
def identity_provider_update_claim_mapping(
    *, identity_provider: IdentityProvider, claim_mapping: dict[str, Any], actor: User | None = None
) -> IdentityProvider:
    """Which claims (attributes) name the person, their email, name, groups and second factor. A new mapping is a
    new configuration: the IdP needs a passing test sign-in again (IdentityProvider.is_verified)."""
    idp = IdentityProvider.objects.select_for_update(of=("self",), no_key=True).get(pk=identity_provider.pk)
    if idp.claim_mapping != claim_mapping:
        before, idp.claim_mapping = idp.claim_mapping, claim_mapping
        idp.save(update_fields=["claim_mapping"])
        audit_record(
            action="idp.mapping_changed",
            obj=idp,
            actor=actor,
            partner_id=idp.partner_id,
            data={"from": before, "to": claim_mapping},
        )
    return idp


@transaction.atomic
def identity_provider_verified(
    *, identity_provider: IdentityProvider, actor: User | None, claims: dict[str, Any], contact: str = ""
) -> None:
    """A test sign-in through the IdP succeeded, by a staff member or the partner's invited contact (`actor`
    None); no partner user was created."""
    idp = IdentityProvider.objects.select_for_update(of=("self",), no_key=True).get(pk=identity_provider.pk)
    idp.verified_at = timezone.now()
    idp.verified_fingerprint = idp.config_fingerprint()
    idp.save(update_fields=["verified_at", "verified_fingerprint"])
    audit_record(
        action="idp.test_sign_in",
        obj=idp,
        actor=actor,
        partner_id=idp.partner_id,
        data={
            # Which of the mapped values it asserted (names only: no personal data in the audit).
            "claims": sorted(k for k, v in claims.items() if k != "claims" and v not in ("", [], None)),
            **({"by_invited_contact": contact} if contact else {}),
        },
    )


# --- partner lifecycle (the grant side: grants.services.revocation.partner_suspend/offboard) ------


def _end_sessions(users: Any) -> int:
    """Sign these people out everywhere: Django ties each session to a hash of the password field, so a fresh
    unusable password invalidates every session they have (partner users never have a real password)."""
    count = 0
    for user in users:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        count += 1
    return count


@transaction.atomic
def partner_set_status(*, partner: Partner, status: str, reason: str, actor: User | None = None) -> Partner:
    partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
    if partner.status == status:
        return partner
    if partner.status == Partner.Status.OFFBOARDED:
        raise ValueError("An offboarded partner cannot change status; onboard it again as a new partner.")
    previous = partner.status
    partner.status = status
    partner.save(update_fields=["status"])
    ended = 0
    if status in (Partner.Status.SUSPENDED, Partner.Status.OFFBOARDED):
        members = User.objects.filter(membership__partner=partner)
        ended = _end_sessions(members)
    if status == Partner.Status.OFFBOARDED:
        Membership.objects.filter(partner=partner, is_active=True).update(is_active=False)
        # The IdP is removed from service and its secret destroyed; the row stays for history.
        partner.identity_providers.update(is_enabled=False, client_secret_encrypted="")
    audit_record(
        action=f"partner.{status}",
        obj=partner,
        actor=actor,
        partner_id=partner.pk,
        data={"from": previous, "reason": reason, "sessions_ended_for": ended},
    )
    return partner


# --- access conditions: window, networks, webhook --------------------------------------------------------


def webhook_masked(url: str) -> str:
    """What staff see of a webhook URL (a secret): its scheme and host only."""
    if not url:
        return ""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…"


@transaction.atomic
def partner_access_update(
    *,
    partner: Partner,
    access_timezone: str,
    access_days: list[int],
    access_start: Any,
    access_end: Any,
    source_ip_allowlist: list[str],
    webhook_url: str | None,
    actor: User | None = None,
) -> Partner:
    """Change when (window) and from where (networks) the partner's people may hold access, and where its
    notices go. `webhook_url` None keeps the current one, "" removes it."""
    import ipaddress

    from django.conf import settings

    validate_window(timezone=access_timezone, days=access_days, start=access_start, end=access_end)
    errors: dict[str, str] = {}
    cidrs: list[str] = []
    for cidr in source_ip_allowlist:
        try:
            cidrs.append(str(ipaddress.ip_network(cidr, strict=False)))
        except ValueError:
            errors["source_ip_allowlist"] = f"Not a network (CIDR): {cidr}."
    if webhook_url:
        scheme = webhook_url.split(":", 1)[0].lower()
        if scheme not in ("https", "http") or (settings.PRODUCTION and scheme != "https"):
            errors["webhook_url"] = "The webhook must be an https:// URL."
    if errors:
        raise ValidationError(errors)
    partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
    before = {
        "window": [
            partner.access_timezone,
            partner.access_days,
            str(partner.access_start),
            str(partner.access_end),
        ],
        "source_ip_allowlist": partner.source_ip_allowlist,
        "webhook": webhook_masked(partner.webhook_url),
    }
    partner.access_timezone, partner.access_days = access_timezone, sorted(set(access_days))
    partner.access_start, partner.access_end = access_start, access_end
    partner.source_ip_allowlist = sorted(set(cidrs))
    if webhook_url is not None:
        partner.webhook_url = webhook_url
    partner.save(
        update_fields=[
            "access_timezone",
            "access_days",
            "access_start",
            "access_end",
            "source_ip_allowlist",
            "webhook_url",
        ]
    )
    after = {
        "window": [
            partner.access_timezone,
            partner.access_days,
            str(partner.access_start),
            str(partner.access_end),
        ],
        "source_ip_allowlist": partner.source_ip_allowlist,
        "webhook": webhook_masked(partner.webhook_url),
    }
    audit_record(
        action="partner.access_updated",
        obj=partner,
        actor=actor,
        partner_id=partner.pk,
        data={k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]},
    )
    return partner


# --- ending one person's place (access reviews; the grant side: grants.services.revocation.membership_revoke)


@transaction.atomic
def membership_end(*, membership: Membership, reason: str, actor: User | None = None) -> Membership:
    """Close a person's place in their organisation: sign-ins refused (the adapter refuses inactive memberships),
    every session and API token ended, admin status gone. The row stays for history. Idempotent."""
    membership = (
        Membership.objects.select_for_update(of=("self",), no_key=True)
        .select_related("user")
        .get(pk=membership.pk)
    )
    if not membership.is_active:
        return membership
    was_admin = membership.is_partner_admin
    membership.is_active, membership.is_partner_admin = False, False
    membership.save(update_fields=["is_active", "is_partner_admin"])
    _end_sessions([membership.user])
    audit_record(
        action="membership.ended",
        obj=membership,
        actor=actor,
        partner_id=membership.partner_id,
        data={"reason": reason, "was_partner_admin": was_admin},
    )
    return membership


@transaction.atomic
def membership_admin_revoke(*, membership: Membership, reason: str, actor: User | None = None) -> Membership:
    """Take partner-admin status away; the person keeps their place and access. Idempotent."""
    membership = Membership.objects.select_for_update(of=("self",), no_key=True).get(pk=membership.pk)
    if not membership.is_partner_admin:
        return membership
    membership.is_partner_admin = False
    membership.save(update_fields=["is_partner_admin"])
    audit_record(
        action="membership.admin_revoked",
        obj=membership,
        actor=actor,
        partner_id=membership.partner_id,
        data={"reason": reason},
    )
    return membership


@transaction.atomic
def membership_make_partner_admin(
    *, membership: Membership, reason: str, actor: User | None = None
) -> Membership:
    """Make an active member their organisation's Porte administrator (members, reviews). Idempotent."""
    membership = Membership.objects.select_for_update(of=("self",), no_key=True).get(pk=membership.pk)
    if membership.is_partner_admin:
        return membership
    if not membership.is_active:
        raise ValidationError({"membership": "Only an active member can become a partner administrator."})
    membership.is_partner_admin = True
    membership.save(update_fields=["is_partner_admin"])
    audit_record(
        action="membership.admin_granted",
        obj=membership,
        actor=actor,
        partner_id=membership.partner_id,
        data={"reason": reason},
    )
    return membership


@transaction.atomic
def membership_groups_set(*, membership: Membership, groups: list[str], reason: str) -> bool:
    """Replace a person's groups with what their partner's directory says (the grant side, revoking what the
    groups no longer allow: grants.services.revocation.membership_groups_change). True if they changed."""
    membership = Membership.objects.select_for_update(of=("self",), no_key=True).get(pk=membership.pk)
    new_groups = sorted(set(groups))
    if new_groups == membership.groups:
        return False
    previous = membership.groups
    membership.groups = new_groups
    membership.save(update_fields=["groups"])
    audit_record(
        action="membership.groups_changed",
        obj=membership,
        partner_id=membership.partner_id,
        data={"from": previous, "to": new_groups, "reason": reason},
    )
    return True
