from __future__ import annotations

from partners.models import BaselineStep, IdentityProvider, Partner, PartnerDomain


def identity_provider_by_provider_id(provider_id: str) -> IdentityProvider | None:
    return IdentityProvider.objects.select_related("partner").filter(provider_id=provider_id).first()


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
