"""Who may see and decide what in reviews; missing and forbidden both answer 404."""

from __future__ import annotations

from django.db.models import QuerySet

from portal.access import actor_of, found_or_404
from portal.models import User
from reviews.models import ReviewCampaign, ReviewItem
from reviews.services import may_decide


def items_for_reviewer(user: User) -> QuerySet[ReviewItem]:
    """Items a partner admin answers: their partner's, assigned to its admins, never about themselves."""
    actor = actor_of(user)
    if not (actor.in_standing and actor.is_partner_admin) or actor.partner_id is None:
        return ReviewItem.objects.none()
    return (
        ReviewItem.objects.filter(
            campaign__partner_id=actor.partner_id, assignee=ReviewItem.Assignee.PARTNER_ADMINS
        )
        .exclude(subject_id=user.pk)
        .select_related("campaign", "decided_by", "role")
    )


def campaigns_for_reviewer(user: User) -> QuerySet[ReviewCampaign]:
    actor = actor_of(user)
    if not (actor.in_standing and actor.is_partner_admin) or actor.partner_id is None:
        return ReviewCampaign.objects.none()
    return ReviewCampaign.objects.filter(partner_id=actor.partner_id).select_related("partner")


def item_for_decider(user: User, item_id: int) -> ReviewItem:
    item = ReviewItem.objects.select_related("campaign__partner").filter(pk=item_id).first()
    return found_or_404(item if item is not None and may_decide(user, item) else None, "review item")


def campaign_for_staff(user: User, campaign_id: int) -> ReviewCampaign:
    campaign = ReviewCampaign.objects.select_related("partner").filter(pk=campaign_id).first()
    return found_or_404(campaign if actor_of(user).is_staff else None, "review")
