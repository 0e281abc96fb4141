"""Campaign generation: one item per eligibility (person and group), membership and partner admin, with evidence
computed from the set-up sign-ins, grants and CloudTrail activity, frozen at the start, and a recommendation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from portal.models import AuditEvent, Notification
from reviews import services
from reviews.models import ReviewCampaign, ReviewerMode, ReviewItem
from tests.reviews.conftest import ReviewWorld, event

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


def _by_label(campaign: ReviewCampaign) -> dict[str, ReviewItem]:
    return {item.label: item for item in campaign.items.all()}


def test_items_cover_every_eligibility_membership_and_admin(world: ReviewWorld) -> None:
    campaign = services.review_campaign_start(partner=world.partner, actor=world.sponsor)
    items = _by_label(campaign)
    assert sorted((i.kind, i.label) for i in items.values()) == sorted(
        [
            ("group_eligibility", "IdP group engineers may request Read-only"),
            ("eligibility", "alice@acme.example may request Operations"),
            ("eligibility", "bob@acme.example may request Operations"),
            ("eligibility", "carol@acme.example may request Operations"),
            ("membership", "pat@acme.example is a member of Acme Corp"),
            ("membership", "alice@acme.example is a member of Acme Corp"),
            ("membership", "bob@acme.example is a member of Acme Corp"),
            ("membership", "carol@acme.example is a member of Acme Corp"),
            ("admin", "pat@acme.example is a partner admin of Acme Corp"),
        ]
    )
    # The sponsor reviews by default: everything is assigned to them.
    assert {i.assignee for i in items.values()} == {"sponsor"}
    assert campaign.period_end - campaign.period_start == timedelta(days=91)
    assert campaign.deadline - campaign.started_at == timedelta(days=14)
    started = AuditEvent.objects.get(action="review.started")
    assert started.data["items"] == 9 and started.actor == world.sponsor
    notice = Notification.objects.get(event="review.started")
    assert notice.recipients == ["sam@porte.example"]


def test_evidence_and_recommendations(world: ReviewWorld) -> None:
    now = world.now
    campaign = services.review_campaign_start(partner=world.partner)
    items = _by_label(campaign)

    alice_ops = items["alice@acme.example may request Operations"]
    assert alice_ops.last_sign_in_at == world.alice.membership.last_sign_in_at
    assert alice_ops.grants_in_period == 1
    assert abs(alice_ops.last_grant_at - (now - timedelta(days=10))) < timedelta(seconds=1)
    assert alice_ops.last_activity_at == now - timedelta(days=10) + timedelta(minutes=5)
    assert alice_ops.actions_used == ["ec2:DescribeInstances"] and alice_ops.actions_allowed_count == 4
    assert alice_ops.unused_actions() == ["ec2:StartInstances", "ec2:StopInstances", "s3:GetObject"]
    assert (alice_ops.recommended, alice_ops.recommendation) == (
        "narrow",
        "uses 1 of 4 allowed actions: narrow",
    )

    bob_ops = items["bob@acme.example may request Operations"]
    assert (bob_ops.grants_in_period, bob_ops.last_activity_at, bob_ops.last_sign_in_at) == (0, None, None)
    assert (bob_ops.recommended, bob_ops.recommendation) == ("revoke", "never used: revoke")

    carol_ops = items["carol@acme.example may request Operations"]
    # Her only grant is older than the period: counted nowhere in it, but still her last use.
    assert carol_ops.grants_in_period == 0 and carol_ops.actions_used == []
    assert carol_ops.last_activity_at == now - timedelta(days=120)
    assert (carol_ops.recommended, carol_ops.recommendation) == ("revoke", "unused for 120 days: revoke")

    group = items["IdP group engineers may request Read-only"]
    # The group's members together: Alice's readonly session. Her refused call is activity (the last), but not
    # a used action.
    assert group.subject_id is None and group.group == "engineers"
    assert group.grants_in_period == 1 and group.last_activity_at == now - timedelta(minutes=10)
    assert group.actions_used == ["ec2:DescribeInstances"] and group.actions_allowed_count == 163
    assert group.last_sign_in_at == world.alice.membership.last_sign_in_at
    assert group.recommendation == "uses 1 of 163 allowed actions: narrow"
    assert "ec2:DescribeVolumes" in group.unused_actions() and len(group.unused_actions()) == 162

    assert items["bob@acme.example is a member of Acme Corp"].recommendation == "never signed in: revoke"
    assert items["carol@acme.example is a member of Acme Corp"].recommended == "keep"
    alice_member = items["alice@acme.example is a member of Acme Corp"]
    assert alice_member.grants_in_period == 2 and alice_member.recommended == "keep"
    assert alice_member.actions_used == ["ec2:DescribeInstances"]
    admin = items["pat@acme.example is a partner admin of Acme Corp"]
    assert (admin.recommended, admin.recommendation) == (
        "revoke",
        "admin without sign-in for 70 days: revoke admin",
    )


def test_evidence_is_frozen_at_the_start(world: ReviewWorld) -> None:
    campaign = services.review_campaign_start(partner=world.partner)
    event(world.alice_readonly, world.now, "ec2.amazonaws.com", "DescribeVolumes")
    world.readonly.inline_policy = {"Version": "2012-10-17", "Statement": []}
    world.readonly.save()
    group = campaign.items.get(kind="group_eligibility")
    assert group.actions_used == ["ec2:DescribeInstances"] and len(group.unused_actions()) == 162


def test_evidence_is_the_periods_only(world: ReviewWorld) -> None:
    """Calls after the period's end (a late CloudTrail delivery, or a campaign started as of an earlier time) are in
    no item: neither as the last activity nor as actions used, so the evidence never contradicts itself."""
    period_end = world.now - timedelta(minutes=15)
    event(world.alice_readonly, world.now - timedelta(minutes=5), "ec2.amazonaws.com", "DescribeVolumes")
    campaign = services.review_campaign_start(partner=world.partner, now=period_end)
    assert campaign.period_end == period_end
    group = campaign.items.get(kind="group_eligibility")
    # Her DescribeInstances 20 minutes ago is in; the refused call 10 minutes ago and DescribeVolumes are not.
    assert group.last_activity_at == world.now - timedelta(minutes=20)
    assert group.actions_used == ["ec2:DescribeInstances"]
    member = campaign.items.get(label="alice@acme.example is a member of Acme Corp")
    assert member.last_activity_at == world.now - timedelta(minutes=20)


def test_partner_admins_review_but_never_their_own_access(world: ReviewWorld) -> None:
    campaign = services.review_campaign_start(partner=world.partner, reviewer=ReviewerMode.PARTNER_ADMINS)
    assignees = {(i.kind, i.subject_id): i.assignee for i in campaign.items.all()}
    assert assignees[("membership", world.pat.pk)] == "sponsor"
    assert assignees[("admin", world.pat.pk)] == "sponsor"
    assert assignees[("membership", world.alice.pk)] == "partner_admins"
    assert assignees[("eligibility", world.bob.pk)] == "partner_admins"
    assert assignees[("group_eligibility", None)] == "partner_admins"


def test_one_open_campaign_per_partner_and_schedule(world: ReviewWorld) -> None:
    # Nothing is due before an interval has passed since the partner was created.
    assert services.review_campaigns_start_due(now=world.now) == []
    later = world.partner.created_at + timedelta(days=91, minutes=1)
    started = services.review_campaigns_start_due(now=later)
    assert len(started) == 1
    assert ReviewCampaign.objects.get().kind == "scheduled"
    assert services.review_campaigns_start_due(now=later) == []  # idempotent
    with pytest.raises(ValidationError, match="has a review open already"):
        services.review_campaign_start(partner=world.partner)
