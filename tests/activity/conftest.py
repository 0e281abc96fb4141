"""The activity world: Acme (Alice holds a grant with a CLI and a console session) and Globex (Mallory), their
dedicated moto accounts, the organisation trail's bucket, and a CloudTrailSimulator writing into it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from activity import trail
from activity.simulator import CloudTrailSimulator
from approvals.services import request_create
from grants.models import CredentialIssue, Grant
from grants.services import activation, minting
from portal.models import User
from tests.fixtures.domain import World


def active_grant(world: World, user: User, minutes: int = 60) -> Grant:
    request = request_create(
        requester=user,
        role=world.role,
        justification="Inventory check 42",
        duration=timedelta(minutes=minutes),
    )
    return activation.grant_activate(grant_id=request.grant.pk)


def mint(grant: Grant, user: User, kind: str) -> CredentialIssue:
    """A real mint: moto's STS assumes the provisioned role with SourceIdentity and tags; Porte records it."""
    return minting.credential_mint(grant_id=grant.pk, user=user, kind=kind, source_ip="203.0.113.9").issue


@pytest.fixture
def simulator(acme: World) -> CloudTrailSimulator:
    org_id = trail.organization_id()
    assert org_id is not None  # build_partner made the organisation the partner accounts were vended into
    sim = CloudTrailSimulator(org_id=org_id)
    sim.ensure_bucket()
    return sim


@pytest.fixture
def alice_grant(acme: World, alice: User) -> Grant:
    return active_grant(acme, alice)


@pytest.fixture
def alice_cli(alice_grant: Grant, alice: User) -> CredentialIssue:
    return mint(alice_grant, alice, CredentialIssue.Kind.CLI)


@pytest.fixture
def alice_console(alice_grant: Grant, alice: User) -> CredentialIssue:
    return mint(alice_grant, alice, CredentialIssue.Kind.CONSOLE)
