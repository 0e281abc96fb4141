"""Review consoles: staff (every partner), partner admins (their partner, their items), decisions, reports."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from partners.models import Partner
from portal.access import acting, acting_user, partner_admin_only, signed_in, staff_required
from portal.responses import add_service_errors, bad_request, form_errors, invalid
from reviews import report, services
from reviews.access import (
    campaign_for_staff,
    campaigns_for_reviewer,
    item_for_decider,
    items_for_reviewer,
)
from reviews.forms import DecisionForm, ReviewSettingsForm, StartCampaignForm
from reviews.models import ReviewCampaign, ReviewItem

PAGE = 500


def _with_counts(campaigns: QuerySet[ReviewCampaign]) -> QuerySet[ReviewCampaign]:
    return campaigns.annotate(
        total=Count("items"),
        undecided=Count("items", filter=Q(items__decision="")),
        follow_ups=Count("items", filter=Q(items__decision="narrow", items__follow_up_done_at__isnull=True)),
    )


@staff_required
@require_GET
def staff_campaigns(request: HttpRequest) -> HttpResponse:
    campaigns = _with_counts(ReviewCampaign.objects.select_related("partner"))[:200]
    return render(request, "reviews/staff_list.html", {"campaigns": campaigns, "form": StartCampaignForm()})


@staff_required
@require_POST
def staff_campaign_start(request: HttpRequest) -> HttpResponse:
    form = StartCampaignForm(request.POST)
    if not form.is_valid():
        return bad_request(request, form_errors(form), back=reverse("review_staff_list"))
    try:
        campaign = services.review_campaign_start(
            partner=form.cleaned_data["partner"],
            kind=ReviewCampaign.Kind.ON_DEMAND,
            actor=acting_user(request),
            reviewer=form.cleaned_data["reviewer"] or None,
        )
    except ValidationError as exc:
        return invalid(request, exc, back=reverse("review_staff_list"))
    messages.success(request, f"Review #{campaign.pk} of {campaign.partner.name} started.")
    return redirect("review_staff_detail", campaign_id=campaign.pk)


def _filtered(request: HttpRequest, items: QuerySet[ReviewItem]) -> tuple[str, QuerySet[ReviewItem]]:
    show = request.GET.get("show", "")
    if show == "undecided":
        items = items.filter(decision="")
    elif show == "decided":
        items = items.exclude(decision="")
    elif show == "follow-ups":
        items = items.filter(decision=ReviewItem.Decision.NARROW, follow_up_done_at__isnull=True)
    return show, items


@staff_required
@require_GET
def staff_campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = campaign_for_staff(acting_user(request), campaign_id)
    show, items = _filtered(request, campaign.items.select_related("decided_by", "subject", "role"))
    return render(
        request,
        "reviews/staff_detail.html",
        {
            "campaign": campaign,
            "items": items[:PAGE],
            "shown": min(items.count(), PAGE),
            "show": show,
            "counts": _with_counts(ReviewCampaign.objects.filter(pk=campaign.pk)).get(),
            "decision_form": DecisionForm(),
        },
    )


@staff_required
@require_GET
def staff_campaign_report(request: HttpRequest, campaign_id: int, fmt: str) -> HttpResponse:
    campaign = campaign_for_staff(acting_user(request), campaign_id)
    name = f"porte-review-{campaign.partner.slug}-{campaign.pk}"
    if fmt == "csv":
        response = HttpResponse(report.report_csv(campaign), content_type="text/csv; charset=utf-8")
    elif fmt == "pdf":
        response = HttpResponse(report.report_pdf(campaign), content_type="application/pdf")
    else:
        raise Http404
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@staff_required
@require_http_methods(["GET", "POST"])
def staff_review_settings(request: HttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(Partner, slug=slug)
    current = services.review_settings_for(partner)
    form = ReviewSettingsForm(
        request.POST or None,
        initial={
            "interval_days": current.interval.days,
            "reviewer": current.reviewer,
            "response_days": current.response_time.days,
            "on_deadline": current.on_deadline,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.review_settings_update(
                partner=partner,
                interval=timedelta(days=form.cleaned_data["interval_days"]),
                reviewer=form.cleaned_data["reviewer"],
                response_time=timedelta(days=form.cleaned_data["response_days"]),
                on_deadline=form.cleaned_data["on_deadline"],
                actor=acting_user(request),
            )
        except ValidationError as exc:
            add_service_errors(form, exc, {"interval": "interval_days", "response_time": "response_days"})
        else:
            messages.success(request, f"Review settings of {partner.name} saved.")
            return redirect("review_staff_list")
    status = 400 if request.method == "POST" else 200
    return render(request, "reviews/settings.html", {"partner": partner, "form": form}, status=status)


@staff_required
@require_POST
def staff_follow_up_done(request: HttpRequest, item_id: int) -> HttpResponse:
    item = item_for_decider(acting_user(request), item_id)
    back = reverse("review_staff_detail", kwargs={"campaign_id": item.campaign_id})
    try:
        services.review_follow_up_done(item=item, actor=acting_user(request))
    except ValidationError as exc:
        return invalid(request, exc, back=back)
    messages.success(request, f"Follow-up of item #{item.pk} marked done.")
    return HttpResponseRedirect(back)


@partner_admin_only
@require_GET
def partner_reviews(request: HttpRequest) -> HttpResponse:
    user = acting_user(request)
    show, items = _filtered(
        request, items_for_reviewer(user).filter(campaign__status=ReviewCampaign.Status.OPEN)
    )
    return render(
        request,
        "reviews/partner_reviews.html",
        {
            "partner": acting(request).partner,
            "campaigns": _with_counts(campaigns_for_reviewer(user))[:20],
            "items": items.select_related("subject")[:PAGE],
            "show": show,
            "decided": items_for_reviewer(user).exclude(decision="").order_by("-decided_at")[:50],
            "decision_form": DecisionForm(),
        },
    )


@signed_in
@require_POST
def item_decide(request: HttpRequest, item_id: int) -> HttpResponse:
    user = acting_user(request)
    item = item_for_decider(user, item_id)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}) or not back.startswith(
        "/"
    ):
        back = (
            reverse("review_staff_detail", kwargs={"campaign_id": item.campaign_id})
            if user.is_staff
            else reverse("partner_reviews")
        )
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return bad_request(request, f"Item #{item.pk}: {form_errors(form)}", back=back)
    try:
        services.review_item_decide(
            item=item,
            decision=form.cleaned_data["decision"],
            comment=form.cleaned_data["comment"],
            actor=user,
        )
    except ValidationError as exc:
        return invalid(request, exc, back=back, prefix=f"Item #{item.pk}: ")
    messages.success(request, f"Item #{item.pk} ({item.label}): {form.cleaned_data['decision']} recorded.")
    return HttpResponseRedirect(back)
