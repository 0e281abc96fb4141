from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from grants import services
from grants.access import grant_for_user
from grants.federation import ConsoleUnavailable, console_sign_in_url
from grants.forms import AccessRequestForm
from grants.models import CredentialIssue, Grant
from grants.selectors import grants_visible_to, roles_requestable_by
from portal import aws
from portal.http import client_ip


def _dashboard(
    request: HttpRequest, form: AccessRequestForm | None = None, status: int = 200
) -> HttpResponse:
    user = request.user
    roles = roles_requestable_by(user)  # type: ignore[arg-type]
    grants = grants_visible_to(user)  # type: ignore[arg-type]
    context = {
        "roles": roles,
        "form": form or AccessRequestForm(roles=roles),
        "current": grants.filter(
            status__in=[
                Grant.Status.PENDING,
                Grant.Status.ACTIVE,
                Grant.Status.EXPIRING,
                Grant.Status.REVOKING,
            ]
        )[:100],
        "past": grants.exclude(
            status__in=[
                Grant.Status.PENDING,
                Grant.Status.ACTIVE,
                Grant.Status.EXPIRING,
                Grant.Status.REVOKING,
            ]
        )[:20],
        "membership": getattr(user, "membership", None),
    }
    return render(request, "grants/dashboard.html", context, status=status)


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return _dashboard(request)


@require_POST
@login_required
def request_access(request: HttpRequest) -> HttpResponse:
    roles = roles_requestable_by(request.user)  # type: ignore[arg-type]
    form = AccessRequestForm(request.POST, roles=roles)
    if form.is_valid():
        try:
            access_request = services.access_request_create(
                requester=request.user,  # type: ignore[arg-type]
                role=form.cleaned_data["role"],
                justification=form.cleaned_data["justification"],
                duration=form.duration,
                source_ip=client_ip(request),
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                target = "duration_minutes" if field == "duration" else field
                for error in errors:
                    form.add_error(target if target in form.fields else None, error)
        else:
            messages.success(request, f"Access to {access_request.role.name} approved; activating now.")
            return redirect("grant_detail", grant_id=access_request.grant.pk)
    return _dashboard(request, form, status=400)


@require_GET
@login_required
def grant_detail(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = grant_for_user(request.user, grant_id)  # type: ignore[arg-type]
    context = {
        "grant": grant,
        "credentials": grant.credentials.all()[:50],
        "is_holder": grant.user_id == request.user.pk,
        # Refresh while the grant is changing state, so the holder sees it become usable without clicking.
        "refresh": grant.status in (Grant.Status.PENDING, Grant.Status.EXPIRING, Grant.Status.REVOKING),
    }
    return render(request, "grants/grant_detail.html", context)


def _mint(request: HttpRequest, grant_id: int, kind: str) -> services.MintedCredentials | HttpResponse:
    grant = grant_for_user(request.user, grant_id)  # type: ignore[arg-type]
    try:
        return services.credential_mint(
            grant_id=grant.pk,
            user=request.user,  # type: ignore[arg-type]
            kind=kind,
            source_ip=client_ip(request),
        )
    except services.GrantNotUsable as exc:
        messages.error(request, str(exc))
    except aws.AwsError as exc:
        messages.error(request, f"AWS did not issue credentials: {exc}. Try again in a moment.")
    return redirect("grant_detail", grant_id=grant.pk)


@require_POST
@login_required
@never_cache
def grant_console(request: HttpRequest, grant_id: int) -> HttpResponse:
    minted = _mint(request, grant_id, CredentialIssue.Kind.CONSOLE)
    if isinstance(minted, HttpResponse):
        return minted
    try:
        url = console_sign_in_url(minted.credentials, issuer=settings.PUBLIC_URL)
    except ConsoleUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("grant_detail", grant_id=grant_id)
    return HttpResponseRedirect(url)


@require_POST
@login_required
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
