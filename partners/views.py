from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from partners import aws_account, federation, idp_validation, registration, services
from partners.adapter import IDP_TEST_RESULT_KEY
from partners.forms import (
    AccountProvisionForm,
    ActivationForm,
    InvitationForm,
    PartnerAccessForm,
    PartnerForm,
    ReasonForm,
    SamlIdpForm,
    SecretRotationForm,
)
from partners.models import IdentityProvider, Partner
from partners.selectors import (
    baseline_steps,
    identity_provider_for_email,
    partners_sharing_idp,
    shared_idp_warning,
)
from partners.windows import window_for
from portal import aws
from portal.access import acting_user, public, staff_required
from portal.responses import add_service_errors, bad_request, form_errors


class SignInForm(forms.Form):
    email = forms.EmailField(
        label="Work email", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "username"})
    )


@public
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    """Partners sign in through their own IdP, found from the domain of their work email."""
    if request.user.is_authenticated:
        return redirect("home")
    form = SignInForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        idp = identity_provider_for_email(form.cleaned_data["email"])
        if idp is not None:
            return redirect(federation.login_path(idp))
        form.add_error(
            "email",
            "No organisation with access to Porte uses this email domain. "
            "Check the address, or ask your Porte sponsor to onboard your organisation.",
        )
    return render(request, "partners/sign_in.html", {"form": form}, status=400 if form.errors else 200)


# --- staff: onboarding ----------------------------------------------------------------------------------------


def _partner(slug: str) -> Partner:
    return get_object_or_404(Partner.objects.select_related("sponsor"), slug=slug)


@staff_required
@require_GET
def partner_list(request: HttpRequest) -> HttpResponse:
    partners = Partner.objects.select_related("sponsor").prefetch_related("identity_providers", "domains")
    return render(request, "partners/partner_list.html", {"partners": partners})


@staff_required
@require_http_methods(["GET", "POST"])
def partner_create(request: HttpRequest) -> HttpResponse:
    form = PartnerForm(request.POST or None, initial={"sponsor": request.user.pk})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        partner = services.partner_create(
            name=data["name"],
            slug=data["slug"],
            domains=data["domains"],
            aws_region=data["aws_region"],
            sponsor=data["sponsor"],
            enforce_email_domains=data["enforce_email_domains"],
            sensitive=data["sensitive"],
            actor=acting_user(request),
        )
        messages.success(
            request, f"{partner.name} created. Next: add its identity provider, or invite its IT contact to."
        )
        return redirect("partner_detail", slug=partner.slug)
    return render(request, "partners/partner_form.html", {"form": form}, status=400 if form.errors else 200)


@staff_required
@require_GET
def partner_detail(request: HttpRequest, slug: str) -> HttpResponse:
    partner = _partner(slug)
    idp = partner.identity_providers.first()
    steps = baseline_steps(partner)
    checklist = [
        ("Identity provider configured", idp is not None and idp.is_enabled),
        ("Test sign-in passed with the current configuration", bool(idp and idp.is_verified)),
        ("Dedicated AWS account", bool(partner.aws_account_id)),
        ("Account and network baseline", all(step.status == step.Status.DONE for step in steps)),
        ("Active", partner.is_active),
    ]
    return render(
        request,
        "partners/partner_detail.html",
        {
            "partner": partner,
            "idp": idp,
            "porte_url": settings.PUBLIC_URL,
            "checklist": checklist,
            "registration": federation.registration_details(idp) if idp else {},
            "members": partner.memberships.select_related("user").order_by("-last_sign_in_at")[:200],
            "reason_form": ReasonForm(),
            "steps": steps,
            # The worker is on it: steps asked for, none failed (a failure stops the run until asked again).
            "provisioning": any(step.pk and step.status == step.Status.PENDING for step in steps)
            and not any(step.status == step.Status.FAILED for step in steps),
            "activation_missing": services.activation_missing(partner),
            "idp_shared_with": partners_sharing_idp(idp) if idp else [],
            "activation_form": ActivationForm(),
            "invitation_form": InvitationForm(),
            "invitations": partner.invitations.select_related("created_by").order_by("-created_at")[:5],
            # Access conditions shown with a link to edit them.
            "window": window_for(partner),
            "webhook": services.webhook_masked(partner.webhook_url),
            "provision_form": AccountProvisionForm(
                initial={"email": partner.aws_account_email or aws_account.account_email_default(partner)}
            ),
        },
    )


def _save_idp(
    request: HttpRequest, partner: Partner, form: registration.IdpForm, existing: IdentityProvider | None
) -> HttpResponse:
    actor = acting_user(request)
    if existing is not None and isinstance(form, SamlIdpForm):
        assert form.parsed is not None
        services.identity_provider_update_saml_metadata(
            identity_provider=existing, metadata=form.parsed, actor=actor
        )
        messages.success(request, "SAML metadata updated.")
    else:
        saved = registration.idp_create(partner, form, actor)
        if saved.protocol == IdentityProvider.Protocol.OIDC:
            messages.success(
                request, "OpenID Connect IdP saved. Register the redirect URI below, then test it."
            )
        else:
            messages.success(request, "SAML IdP saved. Register Porte's SP details below, then test it.")
        if warning := shared_idp_warning(saved):
            messages.warning(request, warning)
    return redirect("partner_detail", slug=partner.slug)


def _rotate_oidc_secret(request: HttpRequest, partner: Partner, idp: IdentityProvider) -> HttpResponse:
    form = SecretRotationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.identity_provider_rotate_oidc_secret(
            identity_provider=idp,
            client_secret=form.cleaned_data["client_secret"],
            actor=acting_user(request),
        )
        messages.success(request, "Client secret replaced; the next sign-in uses it.")
        return redirect("partner_detail", slug=partner.slug)
    return render(
        request,
        "partners/idp_form.html",
        {"partner": partner, "form": form, "protocol": "oidc", "existing": idp},
        status=400 if form.errors else 200,
    )


@staff_required
@require_http_methods(["GET", "POST"])
def partner_idp(request: HttpRequest, slug: str, protocol: str) -> HttpResponse:
    """Add the partner's IdP; for an existing one, rotate its secret (OIDC) or load new metadata (SAML)."""
    partner = _partner(slug)
    existing = partner.identity_providers.first()
    if protocol not in ("oidc", "saml") or (existing and existing.protocol != protocol):
        raise Http404
    if existing and protocol == "oidc":
        return _rotate_oidc_secret(request, partner, existing)
    form = registration.idp_form(protocol, request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            return _save_idp(request, partner, form, existing)
        except idp_validation.IdpConfigError as exc:
            # E.g. metadata for another entity id than this IdP's: said on the form; the service saved nothing.
            form.add_error(None, str(exc))
    return render(
        request,
        "partners/idp_form.html",
        {"partner": partner, "form": form, "protocol": protocol, "existing": existing},
        status=400 if form.errors else 200,
    )


@staff_required
@require_POST
def partner_idp_test(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a test sign-in through the partner's IdP: its answer is shown to the staff member and no partner
    user is created (see PartnerSocialAccountAdapter._finish_test_sign_in)."""
    idp = get_object_or_404(IdentityProvider, partner__slug=slug, is_enabled=True)
    return registration.test_sign_in_start(request, idp)


@staff_required
@require_GET
def partner_idp_test_result(request: HttpRequest, provider_id: str) -> HttpResponse:
    idp = get_object_or_404(IdentityProvider.objects.select_related("partner"), provider_id=provider_id)
    result = request.session.get(IDP_TEST_RESULT_KEY)
    return render(request, "partners/idp_test_result.html", {"idp": idp, "result": result})


@staff_required
@require_POST
def partner_activate(request: HttpRequest, slug: str) -> HttpResponse:
    partner = _partner(slug)
    form = ActivationForm(request.POST)
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=reverse("partner_detail", args=[partner.slug]))
    try:
        partner = services.partner_activate(
            partner=partner,
            actor=acting_user(request),
            exception_reason=form.cleaned_data["exception_reason"],
        )
    except ValidationError as exc:
        steps = "partner" in exc.message_dict
        return bad_request(
            request,
            "Not activated. "
            + " ".join(exc.messages)
            + (" Finish these steps, or record an exception with a reason." if steps else ""),
            back=reverse("partner_detail", args=[partner.slug]),
        )
    if partner.is_active:
        messages.success(request, f"{partner.name} is active: its people can sign in.")
    else:
        messages.success(
            request, f"Your approval is recorded: a second staff member activates {partner.name}."
        )
    return redirect("partner_detail", slug=partner.slug)


@staff_required
@require_POST
def partner_provision(request: HttpRequest, slug: str) -> HttpResponse:
    """Queue the partner's account vending (or adopt an existing account) and network baseline; the steps'
    progress shows on the partner page."""
    partner = _partner(slug)
    form = AccountProvisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("partner_detail", slug=partner.slug)
    actor = acting_user(request)
    adopt = form.cleaned_data["account_id"]
    if adopt and partner.aws_account_id and adopt != partner.aws_account_id:
        messages.error(
            request, f"Nothing was queued: {partner.name} already has account {partner.aws_account_id}."
        )
        return redirect("partner_detail", slug=partner.slug)
    try:
        if adopt and not partner.aws_account_id:
            partner = aws_account.partner_account_adopt(partner=partner, account_id=adopt, actor=actor)
        aws_account.partner_provisioning_request(
            partner=partner, email=form.cleaned_data["email"], actor=actor
        )
    except (aws.AwsError, ValueError) as exc:
        messages.error(request, f"Nothing was queued: {exc}")
    else:
        messages.success(
            request, "Provisioning queued: the steps below show the worker's progress as it goes."
        )
    return redirect("partner_detail", slug=partner.slug)


# --- staff: access conditions (window, networks, webhook) ------------------------------------------------------


@staff_required
@require_http_methods(["GET", "POST"])
def partner_access(request: HttpRequest, slug: str) -> HttpResponse:
    partner = _partner(slug)
    initial = {
        "access_timezone": partner.access_timezone,
        "access_days": partner.access_days,
        "access_start": partner.access_start,
        "access_end": partner.access_end,
        "source_ip_allowlist": "\n".join(partner.source_ip_allowlist),
    }
    form = PartnerAccessForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        webhook = "" if data["remove_webhook"] else (data["webhook_url"].strip() or None)
        try:
            services.partner_access_update(
                partner=partner,
                access_timezone=data["access_timezone"].strip(),
                access_days=data["access_days"],
                access_start=data["access_start"],
                access_end=data["access_end"],
                source_ip_allowlist=data["source_ip_allowlist"],
                webhook_url=webhook,
                actor=acting_user(request),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Access conditions of {partner.name} saved.")
            return redirect("partner_detail", slug=partner.slug)
    return render(
        request,
        "partners/partner_access.html",
        {"partner": partner, "form": form, "webhook": services.webhook_masked(partner.webhook_url)},
        status=400 if form.errors else 200,
    )
