import secrets

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def _external_id() -> str:
    return secrets.token_urlsafe(24)


def _all_days() -> list[int]:
    return [0, 1, 2, 3, 4, 5, 6]


class Partner(models.Model):
    class Status(models.TextChoices):
        ONBOARDING = "onboarding", "Onboarding"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        OFFBOARDED = "offboarded", "Offboarded"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=40, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ONBOARDING)
    aws_account_id = models.CharField(
        max_length=12, blank=True, help_text="The partner's dedicated AWS account."
    )
    aws_region = models.CharField(max_length=32, default="eu-west-1")
    # Regions the guardrail SCP lets the account use besides `aws_region` (global services are always allowed).
    aws_extra_regions = models.JSONField(default=list, blank=True)
    # Account vending: the root email given to CreateAccount, and its request id, saved *before* polling so a
    # crashed worker resumes the same request instead of creating a second account.
    aws_account_email = models.EmailField(blank=True)
    aws_account_request_id = models.CharField(max_length=64, blank=True)
    # A worker deciding whether to call CreateAccount claims the partner first (committed, never a row lock held
    # across the call); a claim older than PORTE_IAM_LEASE_SECONDS belonged to a worker that died.
    aws_account_claimed_at = models.DateTimeField(null=True, blank=True)
    # Required by every scoped role's trust policy (confused-deputy protection).
    external_id = models.CharField(max_length=64, default=_external_id, editable=False)
    sponsor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="sponsored_partners",
        help_text="The Porte staff member accountable for this partner.",
    )
    # Refuse a sign-in whose asserted email is outside the partner's domains (email is never the identity).
    enforce_email_domains = models.BooleanField(default=True)
    # Four eyes: activating a sensitive partner takes two staff members, the second one not the first.
    sensitive = models.BooleanField(default=False)
    activation_approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activation_approved_at = models.DateTimeField(null=True, blank=True)
    # Networks the partner works from (CIDRs). Empty: any. Enforced by Porte and by every session's policy.
    source_ip_allowlist = models.JSONField(default=list, blank=True)
    # When the partner may work (partners/windows.py): on these weekdays (0 = Monday), from start to end in the
    # partner's time zone (an end before the start runs past midnight). No start/end: any time.
    access_timezone = models.CharField(max_length=64, default="UTC")
    access_days = models.JSONField(default=_all_days, blank=True)
    access_start = models.TimeField(null=True, blank=True)
    access_end = models.TimeField(null=True, blank=True)
    # A Slack-compatible incoming webhook for the partner's notices (a secret: never shown back in full).
    webhook_url = models.CharField(max_length=2048, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(aws_account_id="") | models.Q(aws_account_id__regex=r"^[0-9]{12}$"),
                name="partner_aws_account_id_12_digits",
            ),
            models.CheckConstraint(
                condition=(models.Q(access_start__isnull=True) & models.Q(access_end__isnull=True))
                | (models.Q(access_start__isnull=False) & models.Q(access_end__isnull=False)),
                name="partner_access_window_start_and_end",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def allowed_regions(self) -> list[str]:
        return sorted({self.aws_region, *self.aws_extra_regions})


class PartnerDomain(models.Model):
    """An email domain the partner owns: used to route people to the partner's IdP (home-realm discovery)."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253)

    class Meta:
        constraints = [models.UniqueConstraint(Lower("domain"), name="partner_domain_unique_ci")]

    def __str__(self) -> str:
        return self.domain


CERTIFICATE_WARNING_DAYS = 30
DEFAULT_CLAIMS = {
    "oidc": {"subject": "sub", "email": "email", "name": "name", "groups": "groups"},
    # SAML: an empty subject means the (persistent) NameID.
    "saml": {"subject": "", "email": "email", "name": "displayName", "groups": "groups"},
}
# Values of OIDC amr/acr or SAML AuthnContextClassRef that count as multi-factor.
DEFAULT_MFA_VALUES = [
    "mfa",
    "otp",
    "hwk",
    "swk",
    "fpt",
    "face",
    "sc",
    "urn:porte:mfa",
    "http://schemas.openid.net/pape/policies/2007/06/multi-factor",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
]


class IdentityProvider(models.Model):
    """A partner's own IdP. allauth sees it as a SocialApp built from this row (see partners.adapter), so the
    client secret stays encrypted at rest."""

    class Protocol(models.TextChoices):
        OIDC = "oidc", "OpenID Connect"
        SAML = "saml", "SAML 2.0"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="identity_providers")
    # allauth's provider id (SocialAccount.provider): the path segment of /accounts/oidc/<provider_id>/ and, for
    # SAML, the organisation slug of /accounts/saml/<provider_id>/.
    provider_id = models.SlugField(max_length=64, unique=True)
    protocol = models.CharField(max_length=8, choices=Protocol.choices, default=Protocol.OIDC)
    display_name = models.CharField(max_length=120)
    # OpenID Connect
    issuer = models.URLField(
        blank=True, help_text="OIDC issuer; discovery is read from <issuer>/.well-known/openid-configuration"
    )
    client_id = models.CharField(max_length=255, blank=True)
    client_secret_encrypted = models.TextField(blank=True)
    # SAML 2.0
    saml_entity_id = models.CharField(max_length=1024, blank=True)
    saml_sso_url = models.URLField(max_length=1024, blank=True)
    saml_metadata_url = models.URLField(max_length=1024, blank=True)
    # Its SingleLogoutService, for Porte's LogoutResponses (partners.logout); from its metadata.
    saml_slo_url = models.URLField(max_length=1024, blank=True)
    # Signing certificates (base64 DER), newest first: more than one during a rollover.
    saml_certificates = models.JSONField(default=list, blank=True)
    certificate_not_after = models.DateTimeField(null=True, blank=True)
    # Which claims/attributes carry subject, email, name, groups; which amr/acr/AuthnContext values mean MFA.
    claim_mapping = models.JSONField(default=dict, blank=True)
    is_enabled = models.BooleanField(default=True)
    verified_at = models.DateTimeField(null=True, blank=True, help_text="Last successful test sign-in.")
    # The configuration that test sign-in ran with (see `config_fingerprint`): a change asks for a new test.
    verified_fingerprint = models.CharField(max_length=64, blank=True)
    # Once the partner's directory (SCIM) manages groups, its people's groups come from there alone: a sign-in no
    # longer replaces them with what the assertion carried.
    groups_from_directory = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One IdP per partner: a second IdP would be a second source of identities for the same people.
            models.UniqueConstraint(fields=["partner"], name="one_identity_provider_per_partner"),
            models.CheckConstraint(
                condition=(models.Q(protocol="oidc") & ~models.Q(issuer="") & ~models.Q(client_id=""))
                | (models.Q(protocol="saml") & ~models.Q(saml_entity_id="") & ~models.Q(saml_sso_url="")),
                name="identity_provider_protocol_fields",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.provider_id})"

    @property
    def certificate_warning(self) -> str:
        """ "expired" / "expires soon" (within 30 days) / "" for a SAML IdP's newest signing certificate."""
        if not self.certificate_not_after:
            return ""
        left = self.certificate_not_after - timezone.now()
        if left.total_seconds() <= 0:
            return "expired"
        return "expires soon" if left.days < CERTIFICATE_WARNING_DAYS else ""

    def config_fingerprint(self) -> str:
        """A digest of everything that decides how sign-ins through this IdP go (endpoints, client, secret,
        certificates, claim mapping). A new secret, new metadata or a new mapping gives a new fingerprint."""
        import hashlib
        import json

        config = [
            self.protocol,
            self.issuer,
            self.client_id,
            self.client_secret_encrypted,
            self.saml_entity_id,
            self.saml_sso_url,
            self.saml_certificates,
            self.claim_mapping,
            self.is_enabled,
        ]
        return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()

    @property
    def is_verified(self) -> bool:
        """A test sign-in passed with the configuration the IdP has now."""
        return bool(self.verified_at) and self.verified_fingerprint == self.config_fingerprint()

    def mapping(self, key: str) -> str:
        return str(self.claim_mapping.get(key) or DEFAULT_CLAIMS[self.protocol].get(key, ""))

    @property
    def mfa_values(self) -> list[str]:
        return [str(v) for v in self.claim_mapping.get("mfa_values") or DEFAULT_MFA_VALUES]


class Membership(models.Model):
    """A person's place in exactly one partner organisation."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="membership")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="memberships")
    identity_provider = models.ForeignKey(
        IdentityProvider, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    is_partner_admin = models.BooleanField(default=False)
    groups = models.JSONField(
        default=list, blank=True, help_text="Group names asserted by the partner's IdP."
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    # The partner's directory (SCIM, see the directory app) knows this person as a User resource: its id there, and
    # the userName and externalId (the person's subject at the IdP) it gave. No id: the directory never named them,
    # or deleted them.
    scim_id = models.UUIDField(null=True, blank=True, unique=True)
    scim_user_name = models.CharField(max_length=255, blank=True)
    scim_external_id = models.CharField(max_length=255, blank=True)
    # The place was ended because the directory deactivated the person (so the directory may re-open it; a place
    # ended by a review or by staff stays ended whatever the directory says).
    ended_by_directory = models.BooleanField(default=False)
    # Not a person: a partner's pipeline (workloads.Workload), which never signs in and has no IdP. Its place
    # stands or ends like a person's (reviews, suspension, offboarding).
    is_workload = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "scim_external_id"],
                condition=~models.Q(scim_external_id=""),
                name="one_membership_per_directory_subject",
            ),
            # SCIM's userName is unique and compared without case (RFC 7643 §4.1.1).
            models.UniqueConstraint(
                Lower("scim_user_name"),
                "partner",
                condition=models.Q(scim_id__isnull=False),
                name="one_directory_user_name_per_partner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.partner}"


class BaselineStep(models.Model):
    """One step of giving a partner its AWS account and network baseline, as its last run left it.

    Staff read these on the partner page; the resume sweeper re-queues partners whose pending steps went quiet.
    """

    class Name(models.TextChoices):
        # In the order they run; `partners.selectors.baseline_steps` relies on it.
        ACCOUNT = "account", "Dedicated AWS account"
        ORGANIZATIONAL_UNIT = "organizational_unit", "In the Partners organizational unit"
        GUARDRAILS = "guardrails", "Guardrail service control policies"
        VPC = "vpc", "VPC without internet gateway"
        SUBNETS = "subnets", "Private subnets in two availability zones"
        DEFAULT_SECURITY_GROUP = "default_security_group", "Default security group without rules"
        NETWORK_ACL = "network_acl", "Network ACL (intra-VPC only)"
        FLOW_LOGS = "flow_logs", "VPC flow logs"
        VPC_ENDPOINTS = "vpc_endpoints", "VPC endpoints"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="baseline_steps")
    name = models.CharField(max_length=32, choices=Name.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # What the step found or made in AWS (ids, ARNs): shown to staff, used by later steps.
    resource_ids = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "name"], name="baseline_step_unique_per_partner")
        ]

    def __str__(self) -> str:
        return f"{self.partner} {self.name}: {self.status}"

    @property
    def progress(self) -> str:
        """The step as staff read it, the same on every page: a step never asked for is "not started"; one asked
        for (queued, or being run by the worker) is "in progress"."""
        if self.pk is None:
            return "not started"
        return "in progress" if self.status == self.Status.PENDING else self.get_status_display().lower()


def ip_allowed(allowlist: list[str], address: str | None) -> bool:
    """Whether `address` is inside one of the CIDRs (an empty allow-list allows every address)."""
    import ipaddress

    if not allowlist:
        return True
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in allowlist)


class PartnerInvitation(models.Model):
    """A single-use, expiring link that lets the partner's IT contact onboard the partner's identity provider
    themselves (partners/invitations.py). Only a digest of the link's token is stored."""

    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    token_digest = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    # Opened (the link is then used up: it works in that browser only), handed in for review, withdrawn.
    claimed_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["partner", "-created_at"], name="invitation_partner_idx")]

    def __str__(self) -> str:
        return f"Invitation of {self.email} for {self.partner}"

    @property
    def is_open(self) -> bool:
        """Still usable by whoever holds it: not withdrawn, not expired, the partner still onboarding."""
        return (
            self.revoked_at is None
            and self.expires_at > timezone.now()
            and self.partner.status == Partner.Status.ONBOARDING
        )

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "withdrawn"
        if self.submitted_at:
            return "handed in for review"
        if self.expires_at <= timezone.now():
            return "expired"
        return "opened" if self.claimed_at else "sent"


class FederatedSession(models.Model):
    """A Porte session a partner person opened through their IdP, by what the IdP's logout names it: the subject,
    and the IdP's session id (OIDC `sid`). An IdP-initiated logout ends the sessions it names (partners.logout).
    Rows older than the longest a session lives are pruned as new ones are written."""

    identity_provider = models.ForeignKey(IdentityProvider, on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=255)
    sid = models.CharField(max_length=255, blank=True)
    session_key = models.CharField(max_length=40, unique=True)
    # Whose session it is (the logout's audit names them, whatever the IdP calls them).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["identity_provider", "subject"], name="federated_session_subject"),
            models.Index(fields=["identity_provider", "sid"], name="federated_session_sid"),
        ]

    def __str__(self) -> str:
        return f"{self.identity_provider.provider_id}:{self.subject}"
