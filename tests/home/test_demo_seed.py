"""The demo's story (home.demo_seed, run by `manage.py porte_demo`) against moto: every capability has
something to show, and seeding twice adds nothing."""

from __future__ import annotations

import pytest

from activity.models import ActivityEvent
from approvals.models import BreakGlassReview, RoleChange
from grants.models import AccessRequest, Grant
from home import demo_seed
from partners.models import Membership
from portal.models import AuditEvent, User
from reviews.models import ReviewCampaign, ReviewItem
from tests.fixtures.domain import build_partner, make_staff

pytestmark = pytest.mark.django_db


def _totals() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "grants": Grant.objects.count(),
        "requests": AccessRequest.objects.count(),
        "events": ActivityEvent.objects.count(),
        "changes": RoleChange.objects.count(),
        "campaigns": ReviewCampaign.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_demo_story_shows_each_capability_and_seeds_once(local_aws: str) -> None:
    acme = build_partner("acme")
    admin = make_staff("admin")

    world = demo_seed.story_seed(acme.partner, acme.role.permissions_boundary_arn, admin=admin)

    assert Membership.objects.get(user=world.alice).is_partner_admin
    assert not Membership.objects.get(user=world.bob).is_partner_admin
    assert world.deploy.approval_policy.approvals_required == 1
    assert world.incident.approval_policy.break_glass_allowed
    statuses = sorted(Grant.objects.filter(user=world.alice).values_list("status", flat=True))
    assert statuses == ["active", "revoked", "revoked", "revoked"]
    assert BreakGlassReview.objects.filter(request__requester=world.alice, verdict="").count() == 1
    active = Grant.objects.get(user=world.alice, status="active")
    names = set(ActivityEvent.objects.filter(grant=active).values_list("action__event_name", flat=True))
    assert "ConsoleLogin" in names
    assert ActivityEvent.objects.filter(grant=active).exclude(error_code="").exists()
    assert AccessRequest.objects.get(requester=world.bob).status == AccessRequest.Status.PENDING
    assert RoleChange.objects.filter(role=world.readonly, status=RoleChange.Status.PENDING).exists()
    campaign = ReviewCampaign.objects.get(partner=acme.partner, status=ReviewCampaign.Status.OPEN)
    assert ReviewItem.objects.filter(campaign=campaign, assignee="partner_admins").exists()  # Bob's access
    # The evidence and the recommendation count the same used actions.
    narrowed = ReviewItem.objects.filter(campaign=campaign, recommended="narrow")
    assert narrowed.exists()
    for item in narrowed:
        assert f"uses {item.actions_used_count} of {item.actions_allowed_count} " in item.recommendation

    before = _totals()
    demo_seed.story_seed(acme.partner, acme.role.permissions_boundary_arn, admin=admin)
    assert _totals() == before
