from __future__ import annotations

import json
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from grants.access import grant_for_revoker, grant_for_user
from grants.federation import ConsoleUnavailable, console_sign_in_url
from grants.forms import RevokeForm
from grants.models import CredentialIssue
from grants.services import minting, revocation
from partners.forms import ReasonForm
from partners.models import Partner
from portal import aws
from portal.access import acting_user, partner_only, signed_in, staff_required
from portal.http import client_ip
from portal.responses import bad_request, form_errors


def _mint(request: HttpRequest, grant_id: int, kind: str) -> minting.MintedCredentials | HttpResponse:
    grant = grant_for_user(acting_user(request), grant_id)
    console = kind == CredentialIssue.Kind.CONSOLE
    try:
        return minting.credential_mint(
            grant_id=grant.pk,
            user=acting_user(request),
            kind=kind,
            source_ip=client_ip(request),
            # The console needs a sign-in token first: a session that cannot open the console is not recorded.
            exchange=partial(console_sign_in_url, issuer=settings.PUBLIC_URL) if console else None,
        )
    except (minting.GrantNotUsable, ConsoleUnavailable) as exc:
        messages.error(request, str(exc))
    except aws.AwsError as exc:
        messages.error(request, f"AWS did not issue credentials: {exc}. Try again in a moment.")
    return redirect("grant_detail", grant_id=grant.pk)


@partner_only
@require_POST
@never_cache
def grant_console(request: HttpRequest, grant_id: int) -> HttpResponse:
    minted = _mint(request, grant_id, CredentialIssue.Kind.CONSOLE)
    if isinstance(minted, HttpResponse):
        return minted
    assert minted.sign_in_url is not None
    return HttpResponseRedirect(minted.sign_in_url)


@partner_only
@require_POST
@never_cache
def grant_cli(request: HttpRequest, grant_id: int) -> HttpResponse:
    minted = _mint(request, grant_id, CredentialIssue.Kind.CLI)
    if isinstance(minted, HttpResponse):
        return minted
    process = minted.credential_process()
    return render(
        request,
        "grants/cli_credentials.html",
        {
            "grant": minted.issue.grant,
            "issue": minted.issue,
            "payload": json.dumps(process, indent=2),
            "exports": process,
        },
    )


# --- staff and partner-admin actions ----------------------------------------------------------------------------


@signed_in
@require_POST
def grant_revoke(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = grant_for_revoker(acting_user(request), grant_id)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=reverse("grant_detail", args=[grant.pk]))
    revocation.grant_revoke(
        grant=grant, reason=form.cleaned_data["reason"] or "revoked early", actor=acting_user(request)
    )
    messages.success(request, f"Grant #{grant.pk} is being revoked; sessions already issued are denied.")
    return redirect("grant_detail", grant_id=grant.pk)


def _partner_lifecycle(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    partner = get_object_or_404(Partner, slug=slug)
    form = ReasonForm(request.POST)
    back = reverse("partner_detail", args=[slug])
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=back)
    act = revocation.partner_suspend if action == "suspend" else revocation.partner_offboard
    try:
        act(partner=partner, reason=form.cleaned_data["reason"], actor=acting_user(request))
    except ValueError as exc:
        return bad_request(request, str(exc), back=back, status=409)
    messages.success(
        request,
        f"{partner.name} {'suspended' if action == 'suspend' else 'offboarded'}: "
        "sign-ins refused, sessions ended, open grants revoked.",
    )
    return HttpResponseRedirect(back)


@staff_required
@require_POST
def partner_suspend(request: HttpRequest, slug: str) -> HttpResponse:
    return _partner_lifecycle(request, slug, "suspend")


@staff_required
@require_POST
def partner_offboard(request: HttpRequest, slug: str) -> HttpResponse:
    return _partner_lifecycle(request, slug, "offboard")
