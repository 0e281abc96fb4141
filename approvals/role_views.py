"""Staff pages for authoring a partner's scoped roles."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from approvals import changes
from grants import authoring
from grants.forms import RoleForm
from grants.models import Role
from grants.services import revocation
from partners.forms import ReasonForm
from partners.models import Partner
from partners.services import boundary_arn
from portal.access import acting_user, staff_required
from portal.responses import add_service_errors, bad_request, form_errors


def _apply_errors(form: RoleForm, exc: ValidationError) -> None:
    add_service_errors(form, exc, {"max_duration": "max_duration_minutes"})


def _render(
    request: HttpRequest,
    partner: Partner,
    form: RoleForm,
    role: Role | None,
    findings: list[authoring.Finding],
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "approvals/role_form.html",
        {"partner": partner, "form": form, "role": role, "findings": findings},
        status=status,
    )


@staff_required
@require_GET
def role_list(request: HttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(Partner, slug=slug)
    # Pending four-eyes changes are counted so the list says which roles wait for a second staff member.
    roles = (
        partner.roles.prefetch_related("eligibilities")
        .annotate(pending_changes=Count("changes", filter=Q(changes__status="pending")))
        .order_by("name")
    )
    return render(
        request, "approvals/role_list.html", {"partner": partner, "roles": roles, "reason_form": ReasonForm()}
    )


@staff_required
@require_http_methods(["GET", "POST"])
def role_create(request: HttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(Partner, slug=slug)
    templates = authoring.templates(partner)
    chosen = templates.get(request.GET.get("template", ""))
    initial = {
        "permissions_boundary_arn": boundary_arn(partner),
        "inline_policy": json.dumps(
            chosen["policy"] if chosen else {"Version": "2012-10-17", "Statement": []}, indent=2
        ),
        "name": chosen["name"] if chosen else "",
        "template": request.GET.get("template", ""),
    }
    form = RoleForm(request.POST or None, initial=initial, template_names=list(templates))
    findings: list[authoring.Finding] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            findings = authoring.policy_check(data["inline_policy"])
            # Four-eyes: who may request the new role waits for a second staff member.
            role, change = changes.role_create_with_four_eyes(
                partner=partner,
                slug=data["slug"],
                name=data["name"],
                description=data["description"],
                inline_policy=data["inline_policy"],
                permissions_boundary_arn=data["permissions_boundary_arn"],
                max_duration=form.max_duration,
                eligible_groups=data["eligible_groups"],
                actor=acting_user(request),
            )
        except (ValidationError, authoring.PolicyError) as exc:
            _apply_errors(
                form,
                exc if isinstance(exc, ValidationError) else ValidationError({"inline_policy": str(exc)}),
            )
        else:
            messages.success(
                request,
                f"Role {role.name} saved; porte-{role.slug} is being provisioned."
                + _lint_notes(findings)
                + (" Its eligible groups apply once another staff member approves them." if change else ""),
            )
            return redirect("role_list", slug=partner.slug)
    return _render(request, partner, form, None, findings, status=400 if form.errors else 200)


def _lint_notes(findings: list[authoring.Finding]) -> str:
    """The policy linter's notes, said in the message of a saved role (its page is left): each one, not a count."""
    if not findings:
        return ""
    notes = (f"{f.severity or 'note'}: {f.detail}" for f in findings)
    return (
        " Policy lint (parliament): " + "; ".join(n if len(n) <= 200 else n[:199] + "…" for n in notes) + "."
    )


@staff_required
@require_http_methods(["GET", "POST"])
def role_edit(request: HttpRequest, role_id: int) -> HttpResponse:
    role = get_object_or_404(Role.objects.select_related("partner"), pk=role_id)
    initial = {
        "name": role.name,
        "slug": role.slug,
        "description": role.description,
        "inline_policy": json.dumps(role.inline_policy, indent=2),
        "permissions_boundary_arn": role.permissions_boundary_arn,
        "max_duration_minutes": role.max_duration_minutes,
        "eligible_groups": " ".join(role.eligibilities.exclude(group="").values_list("group", flat=True)),
    }
    form = RoleForm(request.POST or None, initial=initial, template_names=[], editing=True)
    findings: list[authoring.Finding] = []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            findings = authoring.policy_check(data["inline_policy"])
            # Four-eyes: anything but name/description waits for a second staff member.
            change = changes.role_change_propose(
                role=role,
                author=acting_user(request),
                changes={
                    "name": data["name"],
                    "description": data["description"],
                    "inline_policy": data["inline_policy"],
                    "permissions_boundary_arn": data["permissions_boundary_arn"],
                    "max_duration_s": int(form.max_duration.total_seconds()),
                    "eligible_groups": data["eligible_groups"],
                },
            )
        except (ValidationError, authoring.PolicyError) as exc:
            _apply_errors(
                form,
                exc if isinstance(exc, ValidationError) else ValidationError({"inline_policy": str(exc)}),
            )
        else:
            if change is not None:
                messages.success(request, "Change proposed: another staff member must approve it.")
                return redirect("staff_change_detail", change_id=change.pk)
            messages.success(request, f"Role {role.name} updated.{_lint_notes(findings)}")
            return redirect("role_list", slug=role.partner.slug)
    return _render(request, role.partner, form, role, findings, status=400 if form.errors else 200)


@staff_required
@require_POST
def role_revoke_sessions(request: HttpRequest, role_id: int) -> HttpResponse:
    role = get_object_or_404(Role.objects.select_related("partner"), pk=role_id)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=reverse("role_list", args=[role.partner.slug]))
    revocation.role_revoke_all_sessions(
        role=role, reason=form.cleaned_data["reason"], actor=acting_user(request)
    )
    messages.success(request, f"Every session of porte-{role.slug} issued until now is being denied.")
    return redirect("role_list", slug=role.partner.slug)
