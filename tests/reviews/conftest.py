"""The review world: Acme with two roles, four people with known sign-ins, grants and AWS activity, and a sponsor.

- `readonly` (ec2:Describe*, 163 actions), open to the IdP group `engineers`;
- `ops` (4 actions), open to Alice, Bob and Carol by name;
- Pat, partner admin, last signed in 70 days ago, never used AWS;
- Alice signed in yesterday; holds an active `readonly` grant (used for ec2:DescribeInstances and a refused
  ec2:TerminateInstances) and used `ops` 10 days ago for ec2:DescribeInstances only;
- Bob never signed in and never used anything;
- Carol signed in 5 days ago; used `ops` 120 days ago (ec2:StartInstances).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from activity.models import ActivityEvent
from approvals.services import request_create
from grants import provisioning
from grants.models import Grant, Role
from grants.services import activation, expiry, role_setup
from partners.models import Partner
from portal.models import User
from tests.fixtures.domain import World, make_member, store_event

OPS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["ec2:DescribeInstances", "ec2:StartInstances", "ec2:StopInstances", "s3:GetObject"],
            "Resource": "*",
        }
    ],
}


@dataclass
class ReviewWorld:
    partner: Partner
    readonly: Role
    ops: Role
    sponsor: User
    pat: User
    alice: User
    bob: User
    carol: User
    alice_readonly: Grant
    now: datetime


def grant_at(user: User, role: Role, at: datetime, minutes: int = 60) -> Grant:
    """A grant requested and activated at `at` (time travel), as the worker would have done then."""
    with time_machine.travel(at, tick=False):
        request = request_create(
            requester=user,
            role=role,
            justification="Review set-up access",
            duration=timedelta(minutes=minutes),
        )
        return activation.grant_activate(grant_id=request.grant.pk)


def event(grant: Grant, at: datetime, source: str, name: str, error: str = "") -> ActivityEvent:
    """An attributed CloudTrail event, as ingestion stores it."""
    return store_event(
        event_time=at,
        event_source=source,
        event_name=name,
        grant=grant,
        error_code=error,
        is_porte_session=True,
    )


def build_review_world(acme: World, sponsor: User) -> ReviewWorld:
    now = timezone.now()
    partner = acme.partner
    sponsor.email = "sam@porte.example"
    sponsor.save(update_fields=["email"])
    partner.sponsor = sponsor
    partner.webhook_url = ""
    partner.save(update_fields=["sponsor", "webhook_url"])
    ops = role_setup.role_create(
        partner=partner,
        slug="ops",
        name="Operations",
        inline_policy=OPS,
        permissions_boundary_arn=acme.role.permissions_boundary_arn,
        max_duration=timedelta(hours=2),
    )
    provisioning.role_provision(role=ops)
    pat = make_member(partner, "pat", groups=(), partner_admin=True)
    alice = make_member(partner, "alice")
    bob = make_member(partner, "bob")
    carol = make_member(partner, "carol")
    for user, ago in ((pat, 70), (alice, 1), (carol, 5)):
        user.membership.last_sign_in_at = now - timedelta(days=ago)
        user.membership.save(update_fields=["last_sign_in_at"])
    for user in (alice, bob, carol):
        ops.eligibilities.create(user=user)

    alice_ops = grant_at(alice, ops, now - timedelta(days=10))
    event(alice_ops, now - timedelta(days=10), "ec2.amazonaws.com", "DescribeInstances")
    event(
        alice_ops, now - timedelta(days=10) + timedelta(minutes=5), "ec2.amazonaws.com", "DescribeInstances"
    )
    carol_ops = grant_at(carol, ops, now - timedelta(days=120))
    event(carol_ops, now - timedelta(days=120), "ec2.amazonaws.com", "StartInstances")
    expiry.grants_expire_due(now=now)  # the past grants ended (their denies are on the role already)

    alice_readonly = grant_at(alice, acme.role, now - timedelta(minutes=30), minutes=120)
    event(alice_readonly, now - timedelta(minutes=20), "ec2.amazonaws.com", "DescribeInstances")
    event(
        alice_readonly, now - timedelta(minutes=10), "ec2.amazonaws.com", "TerminateInstances", "AccessDenied"
    )
    return ReviewWorld(partner, acme.role, ops, sponsor, pat, alice, bob, carol, alice_readonly, now)


@pytest.fixture
def world(acme: World, staff: User) -> ReviewWorld:
    return build_review_world(acme, staff)
