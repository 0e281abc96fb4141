"""Approval pages: request decisions, the staff queues (approvals, active grants, break-glass
reviews, role changes) and the partner admin's pages (members, approvals delegated to them)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals import changes, services
from approvals.access import (
    change_for_staff,
    pending_for_approver,
    request_for_user,
    review_for_staff,
)
from approvals.forms import ApprovalPolicyForm, DecisionReasonForm, ReviewForm
from approvals.models import BreakGlassReview, RoleChange
from grants.access import grant_for_user
from grants.forms import ExtendForm
from grants.models import AccessRequest, Grant, Role
from partners.models import Membership
from portal.access import acting, acting_user, partner_admin_only, partner_only, signed_in, staff_required
from portal.responses import bad_request, form_errors, invalid, validation_messages

# --- one request ------------------------------------------------------------------------------------------------


@signed_in
@require_GET
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    user = acting_user(request)
    access_request = request_for_user(user, request_id)
    pending = access_request.status == AccessRequest.Status.PENDING
    may_decide = pending and services.may_approve(user, access_request)
    is_requester = access_request.requester_id == user.pk
    return render(
        request,
        "approvals/request_detail.html",
        {
            "req": access_request,
            "approvals": access_request.approvals.select_related("approver"),
            "needed": services.approvals_needed(access_request),
            "minutes": int(access_request.requested_duration.total_seconds() // 60),
            "may_decide": may_decide,
            "is_requester": is_requester,
            # The requester waiting for the decision sees it come (a live region); an approver's form stays put.
            "waiting": pending and is_requester and not may_decide,
            "grant": Grant.objects.filter(request=access_request).first(),
            "deny_form": DecisionReasonForm(),
        },
    )


def _decide(request: HttpRequest, request_id: int, decision: str) -> HttpResponse:
    user = acting_user(request)
    access_request = request_for_user(user, request_id)
    back = reverse("request_detail", kwargs={"request_id": access_request.pk})
    try:
        if decision == "approve":
            decided = services.request_approve(request_id=access_request.pk, approver=user)
            if decided.status == AccessRequest.Status.APPROVED:
                messages.success(request, f"Request #{decided.pk} approved; access is activating.")
            else:
                messages.success(request, "Your approval is recorded; more approvers are needed.")
        else:
            form = DecisionReasonForm(request.POST)
            if not form.is_valid():
                return bad_request(request, form_errors(form), back=back)
            services.request_deny(
                request_id=access_request.pk, approver=user, reason=form.cleaned_data["reason"]
            )
            messages.success(request, f"Request #{access_request.pk} denied; the requester is told why.")
    except services.NotAnApprover:
        raise Http404("No such request.") from None
    except services.SelfApprovalRefused as exc:
        return bad_request(request, str(exc), back=back, status=403)
    except ValidationError as exc:
        return invalid(request, exc, back=back)
    return HttpResponseRedirect(back)


@signed_in
@require_POST
def request_approve(request: HttpRequest, request_id: int) -> HttpResponse:
    return _decide(request, request_id, "approve")


@signed_in
@require_POST
def request_deny(request: HttpRequest, request_id: int) -> HttpResponse:
    return _decide(request, request_id, "deny")


# --- staff consoles ---------------------------------------------------------------------------------------------


@staff_required
@require_GET
def staff_approvals(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "approvals/queue.html",
        {
            "pending": pending_for_approver(acting_user(request)),
            "open_reviews": BreakGlassReview.objects.filter(verdict="").count(),
            "pending_changes": RoleChange.objects.filter(status=RoleChange.Status.PENDING).count(),
            "title": "Pending approvals",
        },
    )


@staff_required
@require_GET
def staff_grants(request: HttpRequest) -> HttpResponse:
    grants = (
        Grant.objects.filter(status__in=[Grant.Status.PENDING, Grant.Status.ACTIVE])
        .select_related("role__partner", "user", "request")
        .order_by("ends_at")[:500]
    )
    return render(request, "approvals/active_grants.html", {"grants": grants})


@staff_required
@require_GET
def staff_break_glass(request: HttpRequest) -> HttpResponse:
    reviews = BreakGlassReview.objects.select_related(
        "request__role__partner", "request__requester", "reviewed_by"
    )
    return render(request, "approvals/break_glass_list.html", {"reviews": reviews[:300]})


@staff_required
@require_http_methods(["GET", "POST"])
def staff_break_glass_review(request: HttpRequest, review_id: int) -> HttpResponse:
    review = review_for_staff(acting_user(request), review_id)
    form = ReviewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.break_glass_review_close(
                review_id=review.pk,
                reviewer=acting_user(request),
                verdict=form.cleaned_data["verdict"],
                notes=form.cleaned_data["notes"],
            )
        except ValidationError as exc:
            form.add_error(None, " ".join(validation_messages(exc)))
        else:
            messages.success(request, "Review closed.")
            return redirect("staff_break_glass")
    return render(
        request,
        "approvals/break_glass_review.html",
        {"review": review, "form": form, "grant": Grant.objects.filter(request=review.request).first()},
        status=400 if form.errors else 200,
    )


@staff_required
@require_GET
def staff_changes(request: HttpRequest) -> HttpResponse:
    items = RoleChange.objects.select_related("role__partner", "author", "decided_by")[:300]
    return render(request, "approvals/change_list.html", {"items": items})


@staff_required
@require_GET
def staff_change_detail(request: HttpRequest, change_id: int) -> HttpResponse:
    change = change_for_staff(acting_user(request), change_id)
    return render(
        request,
        "approvals/change_detail.html",
        {
            "change": change,
            "diff": changes.change_diff(change),
            "is_author": change.author_id == request.user.pk,
            "reject_form": DecisionReasonForm(),
        },
    )


@staff_required
@require_POST
def staff_change_decide(request: HttpRequest, change_id: int, decision: str) -> HttpResponse:
    change = change_for_staff(acting_user(request), change_id)
    back = reverse("staff_change_detail", kwargs={"change_id": change.pk})
    try:
        if decision == "approve":
            done = changes.role_change_approve(change_id=change.pk, approver=acting_user(request))
            if done.status == RoleChange.Status.STALE:
                return bad_request(
                    request,
                    "The role changed since this was proposed: propose it again.",
                    back=back,
                    status=409,
                )
            messages.success(request, f"Change applied to {change.role.name}; IAM follows in a moment.")
        elif decision == "reject":
            form = DecisionReasonForm(request.POST)
            if not form.is_valid():
                return bad_request(request, form_errors(form), back=back)
            changes.role_change_reject(
                change_id=change.pk, approver=acting_user(request), reason=form.cleaned_data["reason"]
            )
            messages.success(request, "Change rejected.")
        else:
            raise Http404
    except services.SelfApprovalRefused as exc:
        return bad_request(request, str(exc), back=back, status=403)
    except ValidationError as exc:
        return invalid(request, exc, back=back)
    return HttpResponseRedirect(back)


@staff_required
@require_http_methods(["GET", "POST"])
def role_approval_policy(request: HttpRequest, role_id: int) -> HttpResponse:
    role = get_object_or_404(Role.objects.select_related("partner"), pk=role_id)
    current = changes.role_snapshot(role)["approval"]
    form = ApprovalPolicyForm(request.POST or None, initial=ApprovalPolicyForm.initial_for(current))
    if request.method == "POST" and form.is_valid():
        try:
            change = changes.role_change_propose(
                role=role,
                author=acting_user(request),
                changes={"approval": form.policy()},
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            form.add_error(None, " ".join(validation_messages(exc)))
        else:
            assert change is not None  # an approval policy change always needs four eyes
            messages.success(request, "Change proposed: another staff member must approve it.")
            return redirect("staff_change_detail", change_id=change.pk)
    return render(
        request,
        "approvals/approval_policy_form.html",
        {"role": role, "form": form},
        status=400 if form.errors else 200,
    )


# --- partner admin pages ----------------------------------------------------------------------------------------


@partner_admin_only
@require_GET
def partner_members(request: HttpRequest) -> HttpResponse:
    partner = acting(request).partner
    members = (
        Membership.objects.filter(partner_id=partner.pk)
        .select_related("user")
        .order_by("-is_active", "user__username")
    )
    return render(request, "approvals/members.html", {"partner": partner, "members": members})


@partner_only
@require_GET
def partner_approvals(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "approvals/queue.html",
        {
            "pending": pending_for_approver(acting_user(request)),
            "title": f"Approvals for {acting(request).partner.name}",
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
