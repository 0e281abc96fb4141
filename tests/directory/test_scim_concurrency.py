"""A partner's directory and Porte acting on the same people at once, on PostgreSQL: deactivating a person while
their group changes, deleting them while another group gains them, provisioning the same subject twice, and a
person's grant revoked by staff meanwhile. Released together by a barrier, round after round: each operation
does its work or is refused with a SCIM error; none fails on a deadlock, and the audit chain holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from approvals.services import request_create
from directory import services
from directory.models import DirectoryConnection, DirectoryGroup
from grants.models import Grant
from grants.services import revocation
from partners.models import Membership
from portal.models import User
from tests.fixtures.domain import World
from tests.helpers import assert_audit_chain_whole, purge_broker, require_postgresql, run_together

pytestmark = pytest.mark.django_db(transaction=True)
ROUNDS = 6


def _person(connection_: DirectoryConnection, n: int) -> Membership:
    record = services.PersonRecord(user_name=f"p{n}@acme.example", external_id=f"acme-{n:04d}")
    return services.directory_user_provision(connection=connection_, record=record)


def _round(
    directory: DirectoryConnection, acme: World, staff: User, round_: int
) -> tuple[list[Any], int, int]:
    """This round's operations, and the ids of the person deactivated and of their grant."""
    leaving, moving = _person(directory, 10 * round_), _person(directory, 10 * round_ + 1)
    engineers = services.directory_group_create(
        connection=directory,
        record=services.GroupRecord(f"engineers-{round_}", member_ids=(str(leaving.scim_id),)),
    )
    # The role's eligible group is `engineers`: this round's group takes the name from the last round's.
    DirectoryGroup.objects.filter(display_name="engineers").update(display_name=f"was-{round_}")
    DirectoryGroup.objects.filter(pk=engineers.pk).update(display_name="engineers")
    Membership.objects.filter(pk__in=[leaving.pk, moving.pk]).update(groups=["engineers"])
    grant = request_create(
        requester=User.objects.get(pk=leaving.user_id),
        role=acme.role,
        justification="Concurrency round",
        duration=timedelta(minutes=30),
    ).grant
    assert grant is not None
    both = (str(leaving.scim_id), str(moving.scim_id))
    calls = [
        lambda: services.directory_user_update(
            membership=leaving,
            record=services.PersonRecord(leaving.scim_user_name, leaving.scim_external_id, active=False),
        ),
        lambda: services.directory_group_update(
            group=engineers, record=services.GroupRecord("engineers", member_ids=both)
        ),
        lambda: services.directory_user_delete(membership=moving),
        lambda: services.directory_group_create(
            connection=directory, record=services.GroupRecord(f"others-{round_}")
        ),
        lambda: revocation.grant_revoke(grant=grant, reason="staff, meanwhile", actor=staff),
        # The same subject provisioned twice at once: one wins, the other meets the unique constraint.
        lambda: _person(directory, 10 * round_ + 2),
        lambda: _person(directory, 10 * round_ + 2),
    ]
    return calls, leaving.pk, grant.pk


def test_directory_and_staff_on_the_same_people_never_deadlock(acme: World, staff: User) -> None:
    require_postgresql("tests/directory/test_scim_concurrency.py")
    directory, _token = services.directory_token_rotate(partner=acme.partner, actor=staff)
    for round_ in range(ROUNDS):
        calls, leaving_id, grant_id = _round(directory, acme, staff, round_)
        outcomes = run_together(*calls)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        # Refusals the timing may give, each said to a directory as a SCIM 4xx: the second provisioning of the
        # same subject (the name check or the constraint), or the group naming the person deleted meanwhile.
        assert all(
            isinstance(e, services.DirectoryConflict | IntegrityError | ValidationError) for e in errors
        ), errors
        assert Membership.objects.filter(scim_external_id=f"acme-{10 * round_ + 2:04d}").count() == 1
        assert not Membership.objects.get(pk=leaving_id).is_active
        assert Grant.objects.get(pk=grant_id).status in (Grant.Status.REVOKING, Grant.Status.REVOKED)
        connection.close()
    purge_broker()
    assert_audit_chain_whole()
