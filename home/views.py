"""The pages that bring several domains together: a person's home (their access, their requests, what they may
approve, the request form) and a grant's page (the grant, its sessions, its extension and revocation, its
timeline of activity)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from activity.filters import BadCursor, cursor_decode, cursor_encode
from activity.timeline import grant_timeline
from approvals import services as approvals
from approvals.access import pending_for_approver
from approvals.context import Evidence
from grants.access import can_revoke, grant_for_user
from grants.forms import AccessRequestForm, ExtendForm, RevokeForm
from grants.models import AccessRequest, Grant
from grants.selectors import grants_visible_to, roles_requestable_by
from portal.access import acting, acting_user, partner_only, signed_in
from portal.http import client_ip
from portal.responses import add_service_errors


def _dashboard(
    request: HttpRequest, form: AccessRequestForm | None = None, status: int = 200
) -> HttpResponse:
    user = acting_user(request)
    form = form or AccessRequestForm(roles=roles_requestable_by(user))
    # The tables show each grant's role (and its partner, to staff) and holder; not its request.
    grants = grants_visible_to(user).select_related(None).select_related("role__partner", "user")
    context = {
        # The form's own queryset: the page and the form's choices read the roles once.
        "roles": form.fields["role"].queryset,  # type: ignore[attr-defined]
        "form": form,
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
        # The person's requests still waiting for a decision.
        "waiting": AccessRequest.objects.filter(requester=user, status=AccessRequest.Status.PENDING)
        .select_related("role")
        .order_by("-created_at")[:20],
        # Others' requests this person may decide (partner approvers; staff see theirs on the staff home).
        "to_approve": [] if acting(request).is_staff else pending_for_approver(user),
    }
    return render(request, "home/dashboard.html", context, status=status)


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
            access_request = approvals.request_create(
                requester=acting_user(request),
                role=form.cleaned_data["role"],
                justification=form.cleaned_data["justification"],
                duration=form.duration,
                evidence=Evidence.from_session(request.session, client_ip(request)),
                break_glass=form.cleaned_data["break_glass"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc, {"duration": "duration_minutes"})
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
    is_holder = grant.user_id == request.user.pk
    context = {
        "timeline": timeline,
        "timeline_next": cursor_encode(timeline.next) if timeline.next else "",
        "timeline_paged": after is not None,
        "grant": grant,
        "credentials": grant.credentials.all()[:50],
        "is_holder": is_holder,
        "can_revoke": can_revoke(acting_user(request), grant),
        # Extending is offered only where it can succeed, with the range it can have now.
        "extend_refusal": approvals.extension_refusal(grant) if is_holder and grant.is_usable else "",
        "extend_form": ExtendForm(most=approvals.extension_most_minutes(grant)),
        "revoke_form": RevokeForm(),
        # Refresh while the grant is changing state, so the holder sees it become usable without clicking.
        "refresh": grant.status in (Grant.Status.PENDING, Grant.Status.EXPIRING, Grant.Status.REVOKING),
    }
    return render(request, "home/grant_detail.html", context)
