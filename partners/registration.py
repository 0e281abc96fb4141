"""Registering a partner's IdP from its form, the same for staff (partner page) and for the partner's invited
IT contact (self-service onboarding): the forms validate the IdP over the network first (OIDC discovery, SAML
metadata); the service then stores it, in a transaction of its own."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from partners import federation, services
from partners.adapter import IDP_TEST_KEY
from partners.forms import OidcIdpForm, SamlIdpForm
from partners.models import IdentityProvider, Partner
from portal.models import User

IdpForm = OidcIdpForm | SamlIdpForm


def idp_form(protocol: str, data: Any = None, files: Any = None) -> IdpForm:
    return OidcIdpForm(data) if protocol == IdentityProvider.Protocol.OIDC else SamlIdpForm(data, files)


def idp_create(partner: Partner, form: IdpForm, actor: User | None) -> IdentityProvider:
    """The partner's IdP from a valid form (`actor` None: the invited contact). Raises IdpConfigError when the
    metadata turns out unusable."""
    data = form.cleaned_data
    if isinstance(form, OidcIdpForm):
        return services.identity_provider_create_oidc(
            partner=partner,
            provider_id=partner.slug,
            display_name=data["display_name"],
            issuer=data["issuer"],
            client_id=data["client_id"],
            client_secret=data["client_secret"],
            claim_mapping=form.claim_mapping(),
            actor=actor,
        )
    assert form.parsed is not None
    return services.identity_provider_create_saml(
        partner=partner,
        provider_id=partner.slug,
        display_name=data["display_name"],
        metadata=form.parsed,
        metadata_url=data.get("metadata_url") or "",
        claim_mapping=form.claim_mapping(),
        actor=actor,
    )


def test_sign_in_start(request: HttpRequest, idp: IdentityProvider) -> HttpResponse:
    """The page that sends this browser to the IdP for a test sign-in: its answer comes back to whoever started it
    (partners.adapter: staff, or the invited contact), and nobody is signed in to Porte by it."""
    request.session[IDP_TEST_KEY] = idp.pk
    return render(
        request, "partners/idp_test_start.html", {"idp": idp, "login_path": federation.login_path(idp)}
    )
