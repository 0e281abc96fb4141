from __future__ import annotations

import re
from typing import Any

from django import forms

from partners import idp_validation
from partners.models import Partner, PartnerDomain
from portal.models import User

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class PartnerForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.SlugField(max_length=40, help_text="Short id used in URLs and AWS names, e.g. acme.")
    domains = forms.CharField(
        max_length=2000, help_text="Email domains the partner owns, separated by spaces or commas."
    )
    sponsor = forms.ModelChoiceField(
        queryset=User.objects.filter(is_staff=True, is_active=True),
        help_text="The Porte staff member accountable for this partner.",
    )
    aws_region = forms.CharField(max_length=32, initial="eu-west-1", label="AWS region")
    enforce_email_domains = forms.BooleanField(
        required=False, initial=True, label="Refuse sign-ins whose email is outside these domains"
    )
    sensitive = forms.BooleanField(
        required=False,
        label="Sensitive: activating it takes two staff members (four eyes)",
    )

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"].lower()
        if Partner.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A partner with this slug exists already.")
        return slug

    def clean_domains(self) -> list[str]:
        domains = sorted(
            {d.strip().lower() for d in re.split(r"[\s,]+", self.cleaned_data["domains"]) if d.strip()}
        )
        bad = [d for d in domains if not _DOMAIN.match(d)]
        if bad:
            raise forms.ValidationError(f"Not a domain name: {', '.join(bad)}.")
        taken = list(PartnerDomain.objects.filter(domain__in=domains).values_list("domain", flat=True))
        if taken:
            raise forms.ValidationError(f"Already registered to another partner: {', '.join(taken)}.")
        return domains


class InvitationForm(forms.Form):
    email = forms.EmailField(
        max_length=254, label="IT contact's e-mail", help_text="They get a single-use link, valid 7 days."
    )


class ClaimMappingFields(forms.Form):
    subject_claim = forms.CharField(
        required=False,
        max_length=200,
        label="Subject claim/attribute",
        help_text="Immutable identifier. Empty: OIDC 'sub' / SAML persistent NameID.",
    )
    email_claim = forms.CharField(required=False, max_length=200, initial="email")
    name_claim = forms.CharField(required=False, max_length=200, label="Display-name claim/attribute")
    groups_claim = forms.CharField(required=False, max_length=200, initial="groups")
    mfa_values = forms.CharField(
        required=False,
        max_length=2000,
        label="Values meaning MFA",
        help_text="amr/acr (OIDC) or AuthnContextClassRef (SAML) values that prove a second factor, "
        "space-separated. Empty: Porte's defaults.",
    )

    def claim_mapping(self) -> dict[str, Any]:
        data = self.cleaned_data
        mapping: dict[str, Any] = {
            key: data[f"{key}_claim"].strip()
            for key in ("subject", "email", "name", "groups")
            if data.get(f"{key}_claim", "").strip()
        }
        if data.get("mfa_values", "").strip():
            mapping["mfa_values"] = data["mfa_values"].split()
        return mapping


class OidcIdpForm(ClaimMappingFields):
    display_name = forms.CharField(max_length=120, help_text="Shown on the sign-in button.")
    issuer = forms.URLField(
        assume_scheme="https",
        max_length=200,
        help_text="The IdP's issuer (its discovery document's URL works too); Porte reads "
        "<issuer>/.well-known/openid-configuration.",
    )
    client_id = forms.CharField(max_length=255)
    client_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        max_length=2000,
        validators=[idp_validation.client_secret_strength],
        help_text="Stored encrypted; never shown again.",
    )
    discovered: idp_validation.OidcProviderInfo | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("issuer"):
            try:
                self.discovered = idp_validation.oidc_discover(data["issuer"])
            except idp_validation.IdpConfigError as exc:
                self.add_error("issuer", str(exc))
            else:
                # The issuer as discovery confirmed it: a pasted discovery document URL is stored as its issuer.
                data["issuer"] = self.discovered.issuer
        return data


class SamlIdpForm(ClaimMappingFields):
    display_name = forms.CharField(max_length=120, help_text="Shown on the sign-in button.")
    metadata_url = forms.URLField(
        assume_scheme="https", required=False, max_length=1024, label="IdP metadata URL"
    )
    metadata_file = forms.FileField(required=False, label="…or IdP metadata XML file")
    parsed: idp_validation.SamlIdpInfo | None = None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        url, upload = data.get("metadata_url"), data.get("metadata_file")
        if bool(url) == bool(upload):
            raise forms.ValidationError("Give either the metadata URL or the metadata file.")
        try:
            if url:
                raw = idp_validation.fetch(url, "metadata")
            else:
                assert upload is not None
                raw = upload.read(idp_validation.MAX_DOCUMENT_BYTES + 1)
            self.parsed = idp_validation.saml_metadata_parse(raw)
        except idp_validation.IdpConfigError as exc:
            self.add_error("metadata_url" if url else "metadata_file", str(exc))
        return data


class SecretRotationForm(forms.Form):
    client_secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        max_length=2000,
        validators=[idp_validation.client_secret_strength],
        label="New client secret",
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        help_text="Recorded in the audit log and shown to the partner's sponsor.",
        error_messages={"required": "Give a reason: it is recorded in the audit log."},
    )


class ActivationForm(forms.Form):
    exception_reason = forms.CharField(
        required=False,
        max_length=500,
        label="Activate anyway, because",
        help_text="Only when a step above cannot be finished: the reason and the missing steps are audited.",
    )


class AccountProvisionForm(forms.Form):
    """Staff ask for the partner's AWS account (new, or an existing member of the organization) and network."""

    email = forms.EmailField(
        required=False,
        label="Root email of a new account",
        help_text="Used once, by CreateAccount. Leave empty for the default.",
    )
    account_id = forms.RegexField(
        regex=r"^[0-9]{12}$",
        required=False,
        label="Or adopt an existing account",
        help_text="12-digit id of an account already in Porte's organization.",
        error_messages={"invalid": "An AWS account id is 12 digits."},
    )


class PartnerAccessForm(forms.Form):
    """When and from where the partner's people may hold access, and where its notices go."""

    access_timezone = forms.CharField(
        max_length=64, initial="UTC", label="Time zone", help_text="e.g. Europe/Paris"
    )
    access_days = forms.TypedMultipleChoiceField(
        choices=list(enumerate(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Days",
    )
    access_start = forms.TimeField(
        required=False,
        label="Opens at",
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="In the partner's time zone. Empty (with the close): any time.",
    )
    access_end = forms.TimeField(
        required=False,
        label="Closes at",
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Earlier than the opening: the window runs past midnight.",
    )
    source_ip_allowlist = forms.CharField(
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Networks (CIDRs)",
        help_text="One per line or separated by spaces/commas. Empty: any address.",
    )
    webhook_url = forms.CharField(
        required=False,
        max_length=2048,
        label="New webhook URL",
        help_text="Slack-compatible incoming webhook. Leave empty to keep the current one.",
    )
    remove_webhook = forms.BooleanField(required=False, label="Remove the webhook")

    def clean_source_ip_allowlist(self) -> list[str]:
        return [c for c in re.split(r"[\s,]+", self.cleaned_data["source_ip_allowlist"]) if c]
