from __future__ import annotations

import json
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from grants import services
from grants.access import can_revoke, grant_for_revoker, grant_for_user
from grants.activity.filters import BadCursor, cursor_decode, cursor_encode
from grants.activity.timeline import grant_timeline
from grants.approvals.access import pending_for_approver
from grants.approvals.context import Evidence
from grants.federation import ConsoleUnavailable, console_sign_in_url
from grants.forms import AccessRequestForm, ExtendForm, RevokeForm
from grants.models import AccessRequest, CredentialIssue, Grant
from grants.selectors import grants_visible_to, roles_requestable_by
from partners.forms import ReasonForm
from partners.models import Partner
from portal import aws
from portal.access import acting, acting_user, partner_only, signed_in, staff_required
from portal.http import client_ip
from portal.responses import bad_request, form_errors, invalid


def _dashboard(
    request: HttpRequest, form: AccessRequestForm | None = None, status: int = 200
) -> HttpResponse:
    user = acting_user(request)
    roles = roles_requestable_by(user)
    grants = grants_visible_to(user)
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
        # Approvals feature: the person's requests still waiting for a decision.
        "waiting": AccessRequest.objects.filter(requester=user, status=AccessRequest.Status.PENDING)
        .select_related("role")
        .order_by("-created_at")[:20],
        # Others' requests this person may decide (partner approvers; staff see theirs on the staff home).
        "to_approve": [] if acting(request).is_staff else pending_for_approver(user),
    }
    return render(request, "grants/dashboard.html", context, status=status)


@signed_in
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return _dashboard(request)


@partner_only
@require_POST
def request_access(request: HttpRequest) -> HttpResponse:
    roles = roles_requestable_by(acting_user(request))
    form = AccessRequestForm(request.POST, roles=roles)
    if form.is_valid():
        try:
            access_request = services.access_request_create(
                requester=acting_user(request),
                role=form.cleaned_data["role"],
                justification=form.cleaned_data["justification"],
                duration=form.duration,
                evidence=Evidence.from_session(request.session, client_ip(request)),
                break_glass=form.cleaned_data["break_glass"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                target = "duration_minutes" if field == "duration" else field
                for error in errors:
                    form.add_error(target if target in form.fields else None, error)
        else:
            if access_request.status == AccessRequest.Status.PENDING:
                messages.success(
                    request,
                    f"Request for {access_request.role.name} sent to its approvers; you will be told.",
                )
                return redirect("request_detail", request_id=access_request.pk)
            if access_request.is_break_glass:
                messages.warning(
                    request,
                    f"Break-glass access to {access_request.role.name} granted; activating now. Your "
                    "administrators and Porte staff have been told, and staff will review it.",
                )
            else:
                messages.success(request, f"Access to {access_request.role.name} approved; activating now.")
            return redirect("grant_detail", grant_id=access_request.grant.pk)
    return _dashboard(request, form, status=400)


@signed_in
@require_GET
def grant_detail(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = grant_for_user(acting_user(request), grant_id)
    # The grant's timeline (activity views): lifecycle and events, paged by a signed cursor.
    try:
        after = cursor_decode(request.GET["timeline"]) if request.GET.get("timeline") else None
    except BadCursor as exc:
        return HttpResponseBadRequest(str(exc))
    timeline = grant_timeline(acting_user(request), grant, after=after)
    context = {
        "timeline": timeline,
        "timeline_next": cursor_encode(timeline.next) if timeline.next else "",
        "timeline_paged": after is not None,
        "grant": grant,
        "credentials": grant.credentials.all()[:50],
        "is_holder": grant.user_id == request.user.pk,
        "can_revoke": can_revoke(acting_user(request), grant),
        "extend_form": ExtendForm(),
        "revoke_form": RevokeForm(),
        # Refresh while the grant is changing state, so the holder sees it become usable without clicking.
        "refresh": grant.status in (Grant.Status.PENDING, Grant.Status.EXPIRING, Grant.Status.REVOKING),
    }
    return render(request, "grants/grant_detail.html", context)


def _mint(request: HttpRequest, grant_id: int, kind: str) -> services.MintedCredentials | HttpResponse:
    grant = grant_for_user(acting_user(request), grant_id)
    console = kind == CredentialIssue.Kind.CONSOLE
    try:
        return services.credential_mint(
            grant_id=grant.pk,
            user=acting_user(request),
            kind=kind,
            source_ip=client_ip(request),
            # The console needs a sign-in token first: a session that cannot open the console is not recorded.
            exchange=partial(console_sign_in_url, issuer=settings.PUBLIC_URL) if console else None,
        )
    except (services.GrantNotUsable, ConsoleUnavailable) as exc:
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


@partner_only
@require_POST
def grant_extend(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = grant_for_user(acting_user(request), grant_id)
    form = ExtendForm(request.POST)
    back = reverse("grant_detail", args=[grant.pk])
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=back)
    try:
        services.grant_extend(
            grant=grant,
            by=timedelta(minutes=form.cleaned_data["minutes"]),
            justification=form.cleaned_data["justification"],
            actor=acting_user(request),
        )
    except ValidationError as exc:
        return invalid(request, exc, back=back)
    messages.success(request, "Access extended. Sessions issued before stop at the old end: mint new ones.")
    return HttpResponseRedirect(back)


# --- staff and partner-admin actions ----------------------------------------------------------------------------


@signed_in
@require_POST
def grant_revoke(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = grant_for_revoker(acting_user(request), grant_id)
    form = RevokeForm(request.POST)
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=reverse("grant_detail", args=[grant.pk]))
    services.grant_revoke(
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
    act = services.partner_suspend if action == "suspend" else services.partner_offboard
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
