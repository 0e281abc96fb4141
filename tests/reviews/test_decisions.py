"""Decisions: keep / revoke / narrow with their comment rules; revoke takes the access away through the same
services as every revocation (the eligibility goes, open grants it was the reason for end with the deny on the
role in AWS); narrow changes nothing in IAM and opens a follow-up for staff; nobody decides on their own access."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from approvals.services import request_create
from grants import policies
from grants.models import Eligibility, Grant
from grants.services import expiry
from partners.models import Membership
from portal.models import AuditEvent, Notification
from reviews import services
from reviews.models import ReviewCampaign, ReviewerMode, ReviewItem
from tests.helpers import denied_identities, purge_broker, role_inline_policy
from tests.reviews.conftest import ReviewWorld

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


@pytest.fixture
def campaign(world: ReviewWorld) -> ReviewCampaign:
    return services.review_campaign_start(partner=world.partner, reviewer=ReviewerMode.PARTNER_ADMINS)


def _item(campaign: ReviewCampaign, kind: str, subject=None) -> ReviewItem:  # type: ignore[no-untyped-def]
    return campaign.items.get(kind=kind, subject=subject)


def test_keep_needs_no_comment_revoke_and_narrow_do(world: ReviewWorld, campaign: ReviewCampaign) -> None:
    carol = _item(campaign, "membership", world.carol)
    services.review_item_decide(item=carol, decision="keep", comment="", actor=world.pat)
    carol.refresh_from_db()
    assert (carol.decision, carol.decided_by, carol.enacted_at) == ("keep", world.pat, None)

    bob_ops = _item(campaign, "eligibility", world.bob)
    for decision in ("revoke", "narrow"):
        with pytest.raises(ValidationError) as exc:
            services.review_item_decide(item=bob_ops, decision=decision, comment="  ", actor=world.pat)
        assert "comment" in exc.value.message_dict
    with pytest.raises(ValidationError, match="keep, revoke or narrow"):
        services.review_item_decide(item=bob_ops, decision="maybe", comment="why not", actor=world.pat)
    bob_ops.refresh_from_db()
    assert bob_ops.decision == "" and Eligibility.objects.filter(role=world.ops, user=world.bob).exists()
    with pytest.raises(ValidationError, match="Already decided"):
        services.review_item_decide(item=carol, decision="revoke", comment="changed my mind", actor=world.pat)


def test_reviewer_cannot_decide_their_own_access(world: ReviewWorld, campaign: ReviewCampaign) -> None:
    for kind in ("membership", "admin"):
        with pytest.raises(ValidationError, match="your own access"):
            services.review_item_decide(
                item=_item(campaign, kind, world.pat), decision="keep", comment="", actor=world.pat
            )
    # A partner user who is not an admin decides nothing.
    with pytest.raises(ValidationError, match="not yours"):
        services.review_item_decide(
            item=_item(campaign, "eligibility", world.bob), decision="keep", comment="", actor=world.alice
        )
    # The sponsor (staff) decides the items about the partner's admins.
    services.review_item_decide(
        item=_item(campaign, "admin", world.pat), decision="revoke", comment="Not needed", actor=world.sponsor
    )
    world.pat.membership.refresh_from_db()
    assert world.pat.membership.is_partner_admin is False and world.pat.membership.is_active is True
    assert AuditEvent.objects.filter(action="membership.admin_revoked", actor=world.sponsor).count() == 1


def test_revoking_a_group_eligibility_ends_its_open_grants_with_the_deny(
    world: ReviewWorld, campaign: ReviewCampaign
) -> None:
    group = _item(campaign, "group_eligibility")
    services.review_item_decide(item=group, decision="revoke", comment="Nobody needs it", actor=world.pat)
    purge_broker()  # the endings task queued on commit: done below as the worker would
    assert not Eligibility.objects.filter(role=world.readonly).exists()
    grant = Grant.objects.get(pk=world.alice_readonly.pk)
    assert grant.status == Grant.Status.REVOKING and grant.deny_cutoff is not None
    expiry.role_finish_endings(role_id=world.readonly.pk)
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    # What moto holds on the role: Alice's sessions issued before the cutoff are denied (moto stores the
    # document; it does not evaluate it).
    document = role_inline_policy(
        world.partner.aws_account_id, world.readonly.iam_name, policies.REVOCATIONS_POLICY_NAME
    )
    assert (world.alice.source_identity, policies.iso(grant.deny_cutoff)) in denied_identities(document)
    group.refresh_from_db()
    assert group.enacted_at is not None and group.eligibility_id is None  # the item outlives the eligibility
    revoked = AuditEvent.objects.get(action="eligibility.revoked")
    assert revoked.data["group"] == "engineers" and revoked.data["grants_revoked"] == [grant.pk]
    notice = Notification.objects.get(event="review.revoked")
    # Everyone in the group is told (Bob and Carol lost it too).
    assert sorted(notice.recipients) == ["alice@acme.example", "bob@acme.example", "carol@acme.example"]
    # Alice can no longer request the role.
    with pytest.raises(ValidationError, match="not eligible"):
        request_create(
            requester=world.alice,
            role=world.readonly,
            justification="Trying again after review",
            duration=grant.ends_at - grant.starts_at,
        )


def test_a_person_still_eligible_another_way_keeps_their_grant(
    world: ReviewWorld, campaign: ReviewCampaign
) -> None:
    world.readonly.eligibilities.create(user=world.alice)
    group = _item(campaign, "group_eligibility")
    services.review_item_decide(item=group, decision="revoke", comment="Named people only", actor=world.pat)
    assert Grant.objects.get(pk=world.alice_readonly.pk).status == Grant.Status.ACTIVE


def test_revoking_a_membership_ends_sessions_and_grants(world: ReviewWorld, campaign: ReviewCampaign) -> None:
    alice = _item(campaign, "membership", world.alice)
    password_before = world.alice.password
    services.review_item_decide(item=alice, decision="revoke", comment="Left the company", actor=world.pat)
    purge_broker()
    membership = Membership.objects.get(user=world.alice)
    assert membership.is_active is False
    world.alice.refresh_from_db()
    assert world.alice.password != password_before  # every session and API token of hers ended
    assert Grant.objects.get(pk=world.alice_readonly.pk).status == Grant.Status.REVOKING
    assert AuditEvent.objects.filter(action="membership.ended", object_id=str(membership.pk)).count() == 1
    notice = Notification.objects.get(event="review.revoked")
    assert notice.recipients == ["alice@acme.example"] and "Left the company" in notice.body


def test_narrow_opens_a_follow_up_and_changes_nothing_in_iam(
    world: ReviewWorld, campaign: ReviewCampaign
) -> None:
    before = role_inline_policy(
        world.partner.aws_account_id, world.ops.iam_name, policies.PERMISSIONS_POLICY_NAME
    )
    item = _item(campaign, "eligibility", world.alice)
    services.review_item_decide(
        item=item, decision="narrow", comment="Remove ec2:StopInstances and s3:GetObject", actor=world.pat
    )
    after = role_inline_policy(
        world.partner.aws_account_id, world.ops.iam_name, policies.PERMISSIONS_POLICY_NAME
    )
    assert before == after and world.ops.eligibilities.filter(user=world.alice).exists()
    notice = Notification.objects.get(event="review.narrow")
    assert notice.recipients == ["sam@porte.example"] and "s3:GetObject" in notice.body
    with pytest.raises(ValidationError):
        services.review_follow_up_done(item=_item(campaign, "membership", world.bob), actor=world.sponsor)
    done = services.review_follow_up_done(item=item, actor=world.sponsor)
    assert done.follow_up_done_at is not None
    assert AuditEvent.objects.filter(action="review.follow_up_done").count() == 1


def test_closed_campaign_takes_no_decision(world: ReviewWorld, campaign: ReviewCampaign) -> None:
    services.review_deadlines_enforce(now=campaign.deadline)
    item = campaign.items.filter(kind="membership", subject=world.carol).get()
    with pytest.raises(ValidationError, match="closed"):
        services.review_item_decide(item=item, decision="keep", comment="", actor=world.sponsor)
