"""Concurrent operations on the same role and the same partner, on PostgreSQL, with real services.

Revoking a grant while its holder re-requests the role, the revocation task putting the deny, the expiry sweep,
another member's request, a role change and a membership change for the same partner: released together by a
barrier, round after round. Each operation either does its work or refuses with a message (ValidationError);
none fails on a deadlock or a lock timeout, and the audit chain holds every event once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from approvals.services import request_create
from grants import role_lease
from grants.models import Grant
from grants.services import activation, expiry, revocation
from partners import services as partner_services
from portal.models import AuditEvent, User
from tests.fixtures.domain import World, make_member
from tests.helpers import assert_audit_chain_whole, purge_broker, require_postgresql, run_together

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.aws]
ROUNDS = 8


@pytest.fixture(autouse=True)
def _require_postgresql() -> None:
    require_postgresql("tests/grants/test_concurrent_operations.py")


@pytest.fixture(autouse=True)
def _no_stray_tasks() -> Iterator[None]:
    yield
    purge_broker()  # requests and revocations queue tasks on commit; no worker runs here


def _active_grant(world: World, user) -> Grant:  # type: ignore[no-untyped-def]
    request = request_create(
        requester=user, role=world.role, justification="Concurrency round", duration=timedelta(minutes=30)
    )
    return activation.grant_activate(grant_id=request.grant.pk)


def _round(acme: World, people: dict[str, User], round_: int) -> list[Callable[[], object]]:
    holder, other, changing = people["holder"], people["other"], people["changing"]
    grant = _active_grant(acme, holder)
    others = Grant.objects.filter(user=other, status=Grant.Status.ACTIVE).first()

    def other_member() -> object:
        if others is None:
            return request_create(
                requester=other,
                role=acme.role,
                justification="Another member",
                duration=timedelta(minutes=30),
            )
        return revocation.grant_revoke(grant=others, reason="rotate", actor=other)

    return [
        lambda: revocation.grant_revoke(grant=grant, reason="done early", actor=holder),
        lambda: request_create(
            requester=holder,
            role=acme.role,
            justification="Again, right away",
            duration=timedelta(minutes=30),
        ),
        lambda: expiry.role_finish_endings(role_id=acme.role.pk),
        lambda: expiry.grants_expire_due(),
        other_member,
        lambda: partner_services.membership_record_sign_in(
            user=changing,
            identity_provider=changing.membership.identity_provider,
            groups=["engineers", f"round-{round_}"],
            email=changing.email,
        ),
    ]


def _tidy(people: dict[str, User]) -> None:
    """Between rounds: what was left waiting ends on a sweep; the holder's new request is set aside (it never
    became active); the other member's request is activated, to be revoked in the next round."""
    expiry.grants_expire_due()
    Grant.objects.filter(user=people["holder"], status=Grant.Status.PENDING).update(
        status=Grant.Status.REVOKED, ended_at=timezone.now()
    )
    for pending in Grant.objects.filter(user=people["other"], status=Grant.Status.PENDING):
        activation.grant_activate(grant_id=pending.pk)


def test_revoke_re_request_deny_sweep_and_partner_changes_at_once_never_deadlock(acme: World) -> None:
    people = {name: make_member(acme.partner, name) for name in ("holder", "other", "changing")}
    failures: list[str] = []
    answered = 0
    for round_ in range(ROUNDS):
        for i, outcome in enumerate(run_together(*_round(acme, people, round_))):
            if not isinstance(outcome, BaseException) or isinstance(
                outcome, ValidationError | role_lease.RoleBusy
            ):
                answered += 1  # done, or refused with a message ("you already have this access")
            else:
                failures.append(f"round {round_}, operation {i}: {type(outcome).__name__}: {outcome}")
        _tidy(people)
    assert not failures, "\n".join(failures)
    assert answered == ROUNDS * 6
    expiry.grants_expire_due()
    assert not Grant.objects.filter(status__in=[Grant.Status.EXPIRING, Grant.Status.REVOKING]).exists()
    assert AuditEvent.objects.filter(action="grant.revoke_requested").count() >= ROUNDS
    assert_audit_chain_whole()
