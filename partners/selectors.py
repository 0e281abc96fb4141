from __future__ import annotations

from typing import Any

from partners.models import BaselineStep, IdentityProvider, Partner, PartnerDomain


def identity_provider_by_provider_id(provider_id: str) -> IdentityProvider | None:
    return IdentityProvider.objects.select_related("partner").filter(provider_id=provider_id).first()


def identity_provider_in_request(request: Any, provider_id: str) -> IdentityProvider | None:
    """The IdP, read once per request: a sign-in asks for it at every step (allauth's apps, the adapter, the
    session index). Services that change an IdP lock and read it again."""
    memo: dict[str, IdentityProvider | None] = request.__dict__.setdefault("_porte_idps", {})
    if provider_id not in memo:
        memo[provider_id] = identity_provider_by_provider_id(provider_id)
    return memo[provider_id]


def remember_identity_providers(request: Any, idps: list[IdentityProvider]) -> None:
    """IdPs already read in this request (by allauth's app lookup), for identity_provider_in_request."""
    request.__dict__.setdefault("_porte_idps", {}).update({idp.provider_id: idp for idp in idps})


def identity_provider_for_email(email: str) -> IdentityProvider | None:
    """Home-realm discovery: the enabled IdP of the active partner that owns the email's domain."""
    local, at, domain = email.strip().rpartition("@")
    domain = domain.lower()
    if not (local and at and domain):  # not an address: route nowhere
        return None
    partner_domain = PartnerDomain.objects.select_related("partner").filter(domain__iexact=domain).first()
    if partner_domain is None or partner_domain.partner.status != Partner.Status.ACTIVE:
        return None
    return partner_domain.partner.identity_providers.filter(is_enabled=True).first()


def baseline_steps(partner: Partner) -> list[BaselineStep]:
    """Every account and network step in the order they run; steps never run yet as unsaved pending rows."""
    saved = {step.name: step for step in partner.baseline_steps.all()}
    return [saved.get(name) or BaselineStep(partner=partner, name=name) for name in BaselineStep.Name.values]


def partners_sharing_idp(idp: IdentityProvider) -> list[Partner]:
    """Other partners registered with the same IdP (OIDC issuer or SAML entity id). Allowed (a parent company's
    tenant may serve two partners) but worth a warning: identity is (IdP, subject), so one IdP's people can then
    be bound to either partner depending on which button they use."""
    oidc = idp.protocol == IdentityProvider.Protocol.OIDC
    field, value = ("issuer", idp.issuer) if oidc else ("saml_entity_id", idp.saml_entity_id)
    if not value:
        return []
    twins = IdentityProvider.objects.filter(protocol=idp.protocol, **{field: value}).exclude(
        partner_id=idp.partner_id
    )
    return list(Partner.objects.filter(identity_providers__in=twins).distinct().order_by("name"))


def shared_idp_warning(idp: IdentityProvider) -> str | None:
    twins = partners_sharing_idp(idp)
    if not twins:
        return None
    return (
        f"This IdP is also registered for {', '.join(p.name for p in twins)}: its people can be bound to either "
        "partner. Make sure that is intended (e.g. one parent company's tenant)."
    )
