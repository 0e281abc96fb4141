"""Self-service onboarding pages (partners/invitations.py): staff send the invitation; the partner's contact opens
it, then registers, tests, maps and hands in the partner's IdP from one page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from partners import federation, idp_validation, invitations, registration, services
from partners.adapter import IDP_TEST_RESULT_KEY
from partners.forms import ClaimMappingFields, InvitationForm
from partners.models import IdentityProvider, Partner, PartnerInvitation
from partners.selectors import shared_idp_warning
from portal.access import acting_user, invited, public, staff_required
from portal.responses import bad_request, form_errors

# --- staff ------------------------------------------------------------------------------------------------------


@staff_required
@require_POST
def invitation_create(request: HttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(Partner, slug=slug)
    back = reverse("partner_detail", args=[partner.slug])
    form = InvitationForm(request.POST)
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=back)
    try:
        invitation, token = invitations.invitation_create(
            partner=partner, email=form.cleaned_data["email"], actor=acting_user(request)
        )
    except ValidationError as exc:
        return bad_request(request, " ".join(exc.messages), back=back)
    if problem := invitations.invitation_send(invitation, token):
        messages.error(
            request,
            f"The invitation to {invitation.email} could not be e-mailed ({problem}). "
            "Check the address and the mail settings, then send a new one.",
        )
    else:
        messages.success(
            request,
            f"Invitation e-mailed to {invitation.email}: one use, until {invitation.expires_at:%Y-%m-%d %H:%M} "
            "UTC. Earlier invitations of this partner no longer work.",
        )
    return redirect(back)


# --- the partner's contact ------------------------------------------------------------------------------------------


@public
@require_http_methods(["GET", "POST"])
def invitation_open(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what the link is for; POST opens it (a mail scanner following the link spends nothing)."""
    try:
        if request.method == "POST":
            invitations.invitation_claim(request, token)
            return redirect("onboarding")
        invitation = invitations.invitation_peek(token)
    except invitations.InvitationUnusable as exc:
        return render(request, "partners/invitation_open.html", {"problem": str(exc)}, status=410)
    return render(request, "partners/invitation_open.html", {"invitation": invitation})


def _invitation(request: HttpRequest) -> PartnerInvitation:
    invitation = invitations.invitation_in_session(request)
    if invitation is None:
        raise Http404("This onboarding invitation is no longer open.")
    return invitation


def _idp(invitation: PartnerInvitation) -> IdentityProvider | None:
    return IdentityProvider.objects.filter(partner_id=invitation.partner_id, is_enabled=True).first()


@invited
@require_http_methods(["GET"])
def onboarding(request: HttpRequest) -> HttpResponse:
    invitation = _invitation(request)
    idp = _idp(invitation)
    return _page(request, invitation, idp)


def _page(
    request: HttpRequest,
    invitation: PartnerInvitation,
    idp: IdentityProvider | None,
    *,
    mapping_form: ClaimMappingFields | None = None,
    status: int = 200,
) -> HttpResponse:
    verified = bool(idp and idp.is_verified)
    checklist = [
        ("Register your identity provider", idp is not None),
        ("Register Porte in it, then pass a test sign-in with your own account", verified),
        ("Hand it in for review", invitation.submitted_at is not None),
        (f"Porte activates {invitation.partner.name}", invitation.partner.is_active),
    ]
    context: dict[str, Any] = {
        "invitation": invitation,
        "partner": invitation.partner,
        "idp": idp,
        "checklist": checklist,
        "verified": verified,
        "registration": federation.registration_details(idp) if idp else {},
        "result": request.session.get(IDP_TEST_RESULT_KEY) if idp else None,
        "mapping_form": mapping_form or (_mapping_form(idp) if idp else None),
    }
    return render(request, "partners/onboarding.html", context, status=status)


def _mapping_form(idp: IdentityProvider, data: Any = None) -> ClaimMappingFields:
    mapping = idp.claim_mapping
    initial = {f"{key}_claim": idp.mapping(key) for key in ("subject", "email", "name", "groups")}
    initial["mfa_values"] = " ".join(mapping.get("mfa_values") or [])
    return ClaimMappingFields(data, initial=initial)


@invited
@require_http_methods(["GET", "POST"])
def onboarding_idp(request: HttpRequest, protocol: str) -> HttpResponse:
    """Register the IdP, validated as staff's are (OIDC discovery, SAML metadata); once."""
    invitation = _invitation(request)
    if protocol not in ("oidc", "saml"):
        raise Http404
    if _idp(invitation) is not None:
        messages.info(request, "Your identity provider is registered already.")
        return redirect("onboarding")
    form = registration.idp_form(protocol, request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            idp = _register(invitation, form)
        except idp_validation.IdpConfigError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Identity provider registered. Now register Porte in it, then test it.")
            if warning := shared_idp_warning(idp):
                messages.warning(request, warning)
            return redirect("onboarding")
    return render(
        request,
        "partners/onboarding_idp.html",
        {"partner": invitation.partner, "form": form, "protocol": protocol},
        status=400 if form.errors else 200,
    )


@transaction.atomic
def _register(invitation: PartnerInvitation, form: registration.IdpForm) -> IdentityProvider:
    idp = registration.idp_create(invitation.partner, form, actor=None)
    invitations.audit_step(invitation, "invitation.idp_registered", protocol=idp.protocol)
    return idp


@invited
@require_POST
def onboarding_test(request: HttpRequest) -> HttpResponse:
    """Start a test sign-in with the contact's own account: what the IdP asserts comes back to the onboarding
    page (PartnerSocialAccountAdapter._finish_test_sign_in); nobody is signed in to Porte by it."""
    invitation = _invitation(request)
    idp = _idp(invitation)
    if idp is None:
        return bad_request(request, "Register your identity provider first.", back=reverse("onboarding"))
    request.session.pop(IDP_TEST_RESULT_KEY, None)
    return registration.test_sign_in_start(request, idp)


@invited
@require_POST
def onboarding_mapping(request: HttpRequest) -> HttpResponse:
    invitation = _invitation(request)
    idp = _idp(invitation)
    if idp is None:
        return bad_request(request, "Register your identity provider first.", back=reverse("onboarding"))
    form = _mapping_form(idp, request.POST)
    if not form.is_valid():
        return _page(request, invitation, idp, mapping_form=form, status=400)
    with transaction.atomic():
        changed = services.identity_provider_update_claim_mapping(
            identity_provider=idp, claim_mapping=form.claim_mapping()
        )
        invitations.audit_step(invitation, "invitation.mapping_saved", mapping=changed.claim_mapping)
    if not changed.is_verified:
        messages.success(
            request, "Mapping saved. Run the test sign-in again: it must pass with the new mapping."
        )
    else:
        messages.info(request, "The mapping is unchanged.")
    return redirect(f"{reverse('onboarding')}#test")


@invited
@require_POST
def onboarding_submit(request: HttpRequest) -> HttpResponse:
    invitation = _invitation(request)
    try:
        invitations.invitation_submit(invitation=invitation)
    except ValidationError as exc:
        return bad_request(request, " ".join(exc.messages), back=reverse("onboarding"))
    messages.success(
        request,
        f"Handed in: Porte staff review it and activate {invitation.partner.name}. You will hear from them; "
        "your colleagues then sign in at Porte with their work e-mail.",
    )
    return redirect("onboarding")
