"""Extending a grant, and the partner's network allow-list (enforced by Porte and in every session policy)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from approvals.models import ApprovalPolicy
from approvals.services import grant_extend, request_create
from grants import policies
from grants.models import CredentialIssue, Grant
from grants.services import activation, minting
from partners.models import Partner
from portal.models import AuditEvent
from tests.fixtures.domain import World, make_member, sign_in_as

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


def _active_grant(world: World, user, minutes: int = 30) -> Grant:  # type: ignore[no-untyped-def]
    request = request_create(
        requester=user,
        role=world.role,
        justification="Inventory check 42",
        duration=timedelta(minutes=minutes),
    )
    return activation.grant_activate(grant_id=request.grant.pk)


def test_extension_lengthens_the_one_grant_and_is_audited(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    grant = _active_grant(acme, alice)
    before = grant.ends_at
    extended = grant_extend(
        grant=grant, by=timedelta(minutes=20), justification="Migration overran", actor=alice
    )
    assert extended.ends_at == before + timedelta(minutes=20)
    assert Grant.objects.filter(user=alice, role=acme.role).count() == 1
    event = AuditEvent.objects.get(action="grant.extended", object_id=str(grant.pk))
    assert event.data["justification"] == "Migration overran"


def test_extension_cannot_exceed_the_role_maximum_from_now(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    grant = _active_grant(acme, alice, minutes=110)  # the role allows 2 hours
    with pytest.raises(ValidationError) as refused:
        grant_extend(grant=grant, by=timedelta(minutes=30), justification="A little more time", actor=alice)
    assert "at most 120 minutes from now" in str(refused.value)
    assert Grant.objects.get(pk=grant.pk).ends_at == grant.ends_at


def test_only_the_holder_extends_and_only_active_grants(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    grant = _active_grant(acme, alice)
    colleague = make_member(acme.partner, "carol")
    with pytest.raises(ValidationError, match="Only the holder"):
        grant_extend(
            grant=grant, by=timedelta(minutes=10), justification="Not mine to extend", actor=colleague
        )
    Grant.objects.filter(pk=grant.pk).update(status=Grant.Status.EXPIRED)
    with pytest.raises(ValidationError, match="Only active access"):
        grant_extend(grant=grant, by=timedelta(minutes=10), justification="Too late for this", actor=alice)


def test_a_second_request_never_cuts_the_first_short(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    grant = _active_grant(acme, alice)
    client = Client()
    sign_in_as(client, alice)
    response = client.post(
        "/api/v1/access-requests/",
        {"role": "readonly", "justification": "Second request now", "duration_minutes": 15},
        content_type="application/json",
    )
    assert response.status_code == 400 and "extend it" in response.json()["role"][0]
    assert Grant.objects.get(pk=grant.pk).ends_at == grant.ends_at


def test_extend_page_round_trip(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    grant = _active_grant(acme, alice)
    client = Client()
    sign_in_as(client, alice)
    client.post(f"/grants/{grant.pk}/extend/", {"minutes": 15, "justification": "Need to finish the job"})
    assert Grant.objects.get(pk=grant.pk).ends_at == grant.ends_at + timedelta(minutes=15)


def test_the_grant_page_offers_extension_only_where_it_can_succeed_and_states_its_range(
    acme: World, alice
) -> None:  # type: ignore[no-untyped-def]
    client = sign_in_as(Client(), alice)
    grant = _active_grant(acme, alice, minutes=60)  # the role allows 120 minutes from now: 60 more at most
    page = client.get(f"/grants/{grant.pk}/").content.decode()
    assert "Extend</button>" in page and 'max="60"' in page and "(5\u201360)" in page

    # At the role's maximum already: no form, the reason instead.
    Grant.objects.filter(pk=grant.pk).update(ends_at=timezone.now() + timedelta(minutes=118))
    page = client.get(f"/grants/{grant.pk}/").content.decode()
    assert "Extend</button>" not in page
    assert "Extending: Read-only can run at most 120 minutes from now, and this grant already does." in page

    # A role whose requests need approvers: an extension would bypass them.
    ApprovalPolicy.objects.create(role=acme.role, approvals_required=1)
    Grant.objects.filter(pk=grant.pk).update(ends_at=timezone.now() + timedelta(minutes=30))
    page = client.get(f"/grants/{grant.pk}/").content.decode()
    assert "Extend</button>" not in page and "needs approval: request access again" in page
    with pytest.raises(ValidationError, match="needs approval"):
        grant_extend(grant=grant, by=timedelta(minutes=10), justification="Try it anyway", actor=alice)


def test_session_policy_carries_the_allow_list_with_the_aws_service_exception() -> None:
    ends = timezone.now().replace(microsecond=0)
    document = policies.session_policy(ends_at=ends, source_cidrs=["198.51.100.0/24", "203.0.113.7/32"])
    assert document["Statement"][-1] == {
        "Sid": "DenyOutsidePartnerNetworks",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "NotIpAddress": {"aws:SourceIp": ["198.51.100.0/24", "203.0.113.7/32"]},
            "Bool": {"aws:ViaAWSService": "false"},
        },
    }
    assert len(policies.session_policy(ends_at=ends)["Statement"]) == 2


def test_minting_outside_the_partner_networks_is_refused_with_the_reason(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    grant = _active_grant(acme, alice)
    Partner.objects.filter(pk=acme.partner.pk).update(source_ip_allowlist=["198.51.100.0/24"])
    with pytest.raises(minting.GrantNotUsable, match=r"203\.0\.113\.9 is not one of them"):
        minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli", source_ip="203.0.113.9")
    assert not CredentialIssue.objects.filter(grant=grant).exists()
    minted = minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli", source_ip="198.51.100.20")
    assert minted.issue.source_ip == "198.51.100.20"


def test_minting_after_the_end_says_the_grant_expired_before_any_sweep(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    """The sweep has not run yet (the grant is still `active` in the database), but its time is up: minting is
    refused with the true reason and the moment it ended, and no session is issued."""
    grant = _active_grant(acme, alice)
    ended = timezone.now() - timedelta(seconds=5)
    Grant.objects.filter(pk=grant.pk).update(starts_at=ended - timedelta(minutes=30), ends_at=ended)
    with pytest.raises(minting.GrantNotUsable, match=rf"^This grant expired at {ended:%Y-%m-%d %H:%M} UTC"):
        minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli", source_ip="198.51.100.20")
    assert Grant.objects.get(pk=grant.pk).status == Grant.Status.ACTIVE
    assert not CredentialIssue.objects.filter(grant=grant).exists()
