"""The staff home page (/staff/): every queue that waits for a staff member, with its count, and the partners
still onboarding with their account checklist. The navigation links here instead of to each queue."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from activity.models import Alert, QuarantinedObject
from approvals.access import pending_for_approver
from approvals.models import BreakGlassReview, RoleChange
from grants.models import Grant
from partners.models import BaselineStep, Partner, PartnerInvitation
from partners.selectors import baseline_steps
from portal.access import acting_user, staff_required
from portal.models import User
from reviews.models import ReviewCampaign


@dataclass(frozen=True)
class Queue:
    title: str
    count: int
    url: str
    empty: str  # what a zero means, said plainly
    needs_action: bool = True  # a count above zero is work waiting (not so for active grants)


@dataclass(frozen=True)
class Onboarding:
    partner: Partner
    steps: list[BaselineStep]
    done: int


def staff_queues(user: User) -> list[Queue]:
    """What waits for this staff member (their own requests and changes are not theirs to decide)."""
    changes = RoleChange.objects.filter(status=RoleChange.Status.PENDING)
    return [
        Queue(
            "Security alerts not yet acknowledged",
            Alert.objects.filter(acknowledged_at__isnull=True).count(),
            reverse("alert_list"),
            "Every alert has been acknowledged.",
        ),
        Queue(
            "Access requests to approve",
            len(pending_for_approver(user)),
            reverse("staff_approvals"),
            "No request waits for you.",
        ),
        Queue(
            "Role changes awaiting a second person",
            changes.exclude(author=user).count(),
            reverse("staff_changes"),
            "No change proposed by someone else waits for you.",
        ),
        Queue(
            "Break-glass access to review",
            BreakGlassReview.objects.filter(verdict="").count(),
            reverse("staff_break_glass"),
            "Every break-glass use has been reviewed.",
        ),
        Queue(
            "Sensitive partners' activations awaiting a second person",
            Partner.objects.filter(activation_approved_by__isnull=False)
            .exclude(status=Partner.Status.ACTIVE)
            .exclude(activation_approved_by=user)
            .count(),
            reverse("partner_list"),
            "No activation approved by someone else waits for you.",
        ),
        Queue(
            "Partner identity providers handed in for review",
            PartnerInvitation.objects.filter(
                submitted_at__isnull=False, revoked_at__isnull=True, partner__status=Partner.Status.ONBOARDING
            ).count(),
            reverse("partner_list"),
            "No partner's self-service onboarding waits for review.",
        ),
        Queue(
            "Open access reviews",
            ReviewCampaign.objects.filter(status=ReviewCampaign.Status.OPEN).count(),
            reverse("review_staff_list"),
            "No access review is open.",
        ),
        Queue(
            "Quarantined CloudTrail files",
            QuarantinedObject.objects.filter(resolved=False).count(),
            reverse("activity_quarantine"),
            "Every trail file was read.",
        ),
        Queue(
            "Active grants",
            Grant.objects.filter(status=Grant.Status.ACTIVE).count(),
            reverse("staff_grants"),
            "Nobody holds access right now.",
            needs_action=False,
        ),
    ]


def partners_onboarding() -> list[Onboarding]:
    rows = []
    for partner in Partner.objects.filter(status=Partner.Status.ONBOARDING).order_by("name"):
        steps = baseline_steps(partner)
        done = sum(step.status == BaselineStep.Status.DONE for step in steps)
        rows.append(Onboarding(partner, steps, done))
    return rows


@staff_required
@require_GET
def staff_home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "home/staff_home.html",
        {"queues": staff_queues(acting_user(request)), "onboarding": partners_onboarding()},
    )
