"""Who may see and decide what in reviews; missing and forbidden both answer 404."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from grants.reviews.models import ReviewCampaign, ReviewItem
from grants.reviews.services import may_decide
from partners.models import Membership
from portal.models import User


def reviewing_membership(user: User) -> Membership | None:
    """The partner-admin place from which a partner user reviews, or None."""
    membership = getattr(user, "membership", None)
    if membership is None or not membership.is_active or not membership.is_partner_admin:
        return None
    return membership


def items_for_reviewer(user: User) -> QuerySet[ReviewItem]:
    """Items a partner admin answers: their partner's, assigned to its admins, never about themselves."""
    membership = reviewing_membership(user)
    if membership is None:
        return ReviewItem.objects.none()
    return (
        ReviewItem.objects.filter(
            campaign__partner_id=membership.partner_id, assignee=ReviewItem.Assignee.PARTNER_ADMINS
        )
        .exclude(subject_id=user.pk)
        .select_related("campaign", "decided_by", "role")
    )


def campaigns_for_reviewer(user: User) -> QuerySet[ReviewCampaign]:
    membership = reviewing_membership(user)
    if membership is None:
        return ReviewCampaign.objects.none()
    return ReviewCampaign.objects.filter(partner_id=membership.partner_id).select_related("partner")


def item_for_decider(user: User, item_id: int) -> ReviewItem:
    item = ReviewItem.objects.select_related("campaign__partner").filter(pk=item_id).first()
    if item is None or not (user.is_staff or may_decide(user, item)):
        raise Http404("No such review item.")
    return item


def campaign_for_staff(user: User, campaign_id: int) -> ReviewCampaign:
    campaign = ReviewCampaign.objects.select_related("partner").filter(pk=campaign_id).first()
    if campaign is None or not user.is_staff:
        raise Http404("No such review.")
    return campaign
