"""Expiry on PostgreSQL when sweepers race, repeat, or find AWS unreachable.

Beat may run the sweep on two workers at once (a slow sweep overlapping the next tick, or two beats during a
deploy), a message may be delivered twice, and AWS may be down at the moment access must end. In every case each
grant ends exactly once, with exactly one audit event, and only after the deny naming its holder is on the role;
no row lock is held while AWS is called, and a role whose AWS call failed is backed off without holding up the
others or its own next try (no lease to wait out).

The grants are created through the real request service and activated through the real activation service (the
code a worker runs), against moto. Their times are then moved into the past with a queryset update: that
simulates time passing (the sweeper reads ends_at from the database), without sleeping for 15 minutes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.services import request_create
from grants import policies
from grants.models import Grant, Role
from grants.services import activation, expiry, role_setup
from portal import aws
from portal.models import AuditEvent, User
from tests.fixtures.domain import READ_ONLY, World, make_member
from tests.helpers import (
    assert_audit_chain_whole,
    denied_identities,
    locked_elsewhere,
    purge_broker,
    require_postgresql,
    role_inline_policy,
    run_together,
)
from tests.peers.oidc_idp import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.aws]

USERS = 10


@pytest.fixture(autouse=True)
def _require_postgresql() -> None:
    # SKIP LOCKED and the row locks under test are PostgreSQL's; SQLite serialises writers instead.
    require_postgresql("tests/grants/test_expiry_concurrency.py")


@pytest.fixture(autouse=True)
def _no_stray_activations() -> Iterator[None]:
    # Requests queue their activation on commit; no worker runs here (the test activates them itself).
    yield
    purge_broker()


def _due_grants(acme: World, *, roles: int) -> list[Grant]:
    """USERS Acme engineers, each holding an active grant on each of `roles` roles, all past their end."""
    role_list = [acme.role]
    if roles > 1:
        operator = role_setup.role_create(
            partner=acme.partner,
            slug="operator",
            name="Operator",
            inline_policy=READ_ONLY,
            permissions_boundary_arn=acme.role.permissions_boundary_arn,
            max_duration=timedelta(hours=1),
            eligible_groups=["engineers"],
        )
        from grants import provisioning

        role_list.append(provisioning.role_provision(role=operator))
    grant_ids = []
    for i in range(USERS):
        user = make_member(acme.partner, f"engineer{i:02d}")
        for role in role_list:
            request = request_create(
                requester=user, role=role, justification="Nightly batch check", duration=timedelta(minutes=15)
            )
            grant = activation.grant_activate(grant_id=request.grant.pk)
            assert grant.status == Grant.Status.ACTIVE
            grant_ids.append(grant.pk)
    # Time passes: every grant ended a second ago.
    now = timezone.now()
    Grant.objects.filter(pk__in=grant_ids).update(
        starts_at=now - timedelta(minutes=16), ends_at=now - timedelta(seconds=1)
    )
    return list(Grant.objects.filter(pk__in=grant_ids).select_related("user", "role"))


def _run_concurrently(*calls) -> list[int]:  # type: ignore[no-untyped-def]
    outcomes = run_together(*calls)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


def _expired_events(grant_ids: list[int]) -> Counter[str]:
    return Counter(
        AuditEvent.objects.filter(
            action="grant.expired", object_type="grants.grant", object_id__in=[str(g) for g in grant_ids]
        ).values_list("object_id", flat=True)
    )


def _assert_denies_match(acme: World, grants: list[Grant]) -> None:
    """Each role's porte-revocations policy names each holder exactly once, with their grant's cutoff."""
    for role in {g.role for g in grants}:
        document = role_inline_policy(
            acme.partner.aws_account_id, role.iam_name, policies.REVOCATIONS_POLICY_NAME
        )
        denied = denied_identities(document)
        assert Counter(identity for identity, _ in denied) == Counter(
            g.user.source_identity for g in grants if g.role == role
        )
        cutoffs = {g.user.source_identity: policies.iso(g.deny_cutoff) for g in grants if g.role == role}
        assert dict(denied) == cutoffs


def test_two_sweepers_racing_end_each_grant_exactly_once(acme):
    grants = _due_grants(acme, roles=2)
    ids = [g.pk for g in grants]
    assert len(ids) == 2 * USERS

    ended = _run_concurrently(expiry.grants_expire_due, expiry.grants_expire_due)

    # Between them the sweepers ended every grant, and no grant was counted by both.
    assert sum(ended) == len(ids)
    final = list(Grant.objects.filter(pk__in=ids).select_related("user", "role"))
    assert {g.status for g in final} == {Grant.Status.EXPIRED}
    assert all(g.ended_at and g.deny_cutoff and g.failure_reason == "" for g in final)
    # The cutoff is at or after the grant's end, so no session issued before the end survives it.
    assert all(g.deny_cutoff >= g.ends_at for g in final)
    assert _expired_events(ids) == Counter({str(g): 1 for g in ids})
    _assert_denies_match(acme, final)
    assert_audit_chain_whole()


def _aws_unreachable(settings) -> None:  # type: ignore[no-untyped-def]
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    aws.reset_caches()


def _aws_back(settings, local_aws: str) -> None:  # type: ignore[no-untyped-def]
    settings.AWS_ENDPOINT_URL = local_aws
    aws.reset_caches()


def _backoff_passes(role_ids: set[int]) -> None:
    # Time passes: the backoff after the failure is over (the sweeper reads iam_retry_at from the database).
    Role.objects.filter(pk__in=role_ids).update(iam_retry_at=timezone.now() - timedelta(seconds=1))


def test_two_sweepers_racing_over_waiting_grants_end_each_grant_exactly_once(acme, local_aws, settings):
    """The other race: grants left waiting by a sweep that failed (here: AWS unreachable), taken up by two
    sweepers at once once the backoff is over. The role's IAM lease and the conditional update let exactly one
    of them end each grant."""
    grants = _due_grants(acme, roles=2)
    ids = [g.pk for g in grants]
    _aws_unreachable(settings)
    assert expiry.grants_expire_due() == 0
    assert set(Grant.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Grant.Status.EXPIRING}
    _aws_back(settings, local_aws)
    _backoff_passes({g.role_id for g in grants})

    ended = _run_concurrently(expiry.grants_expire_due, expiry.grants_expire_due)

    assert sum(ended) == len(ids)
    final = list(Grant.objects.filter(pk__in=ids).select_related("user", "role"))
    assert {g.status for g in final} == {Grant.Status.EXPIRED}
    assert _expired_events(ids) == Counter({str(g): 1 for g in ids})
    _assert_denies_match(acme, final)
    assert_audit_chain_whole()


def test_no_row_is_locked_while_aws_is_called(acme):
    """While the sweeper's PutRolePolicy is in flight, another connection can lock the role and every grant
    being ended (NOWAIT: it would fail at once if any of them were locked), and sign-ins, requests and audited
    writes elsewhere carry on."""
    grants = _due_grants(acme, roles=1)
    ids = [g.pk for g in grants]
    seen: list[bool] = []

    def check_nothing_locked(**_: object) -> None:
        seen.append(locked_elsewhere("grants_role", [acme.role.pk]) or locked_elsewhere("grants_grant", ids))

    iam = aws.partner(acme.partner.aws_account_id).iam
    iam.meta.events.register("before-call.iam.PutRolePolicy", check_nothing_locked)
    try:
        assert expiry.grants_expire_due() == len(ids)
    finally:
        iam.meta.events.unregister("before-call.iam.PutRolePolicy", check_nothing_locked)
    assert seen == [False]


def test_a_role_whose_aws_write_fails_holds_up_no_other_role(acme, globex):
    """Acme's IAM role has gone (AWS refuses the deny on it); Globex's grants end in the same sweep. Acme's role
    is backed off, its lease released at once, and its grants end on the first sweep after the backoff once
    the role is back."""
    acme_grants = _due_grants(acme, roles=1)
    globex_user = make_member(globex.partner, "gina")
    request = request_create(
        requester=globex_user,
        role=globex.role,
        justification="Nightly batch check",
        duration=timedelta(minutes=15),
    )
    globex_grant = activation.grant_activate(grant_id=request.grant.pk)
    now = timezone.now()
    Grant.objects.filter(pk=globex_grant.pk).update(
        starts_at=now - timedelta(minutes=16), ends_at=now - timedelta(seconds=1)
    )
    iam = aws.partner(acme.partner.aws_account_id).iam
    iam.delete_role_policy(RoleName=acme.role.iam_name, PolicyName=policies.PERMISSIONS_POLICY_NAME)
    iam.delete_role(RoleName=acme.role.iam_name)

    assert expiry.grants_expire_due() == 1  # Globex's

    assert Grant.objects.get(pk=globex_grant.pk).status == Grant.Status.EXPIRED
    role = Role.objects.get(pk=acme.role.pk)
    assert role.iam_lease_until is None and role.iam_failures == 1 and role.iam_retry_at > timezone.now()
    assert {g.status for g in Grant.objects.filter(pk__in=[g.pk for g in acme_grants])} == {
        Grant.Status.EXPIRING
    }
    assert expiry.grants_expire_due() == 0  # backed off: not even tried

    from grants import provisioning

    provisioning.role_provision(role=role)
    _backoff_passes({role.pk})
    assert expiry.grants_expire_due() == len(acme_grants)
    role.refresh_from_db()
    assert (role.iam_failures, role.iam_retry_at) == (0, None)
    assert_audit_chain_whole()


def test_duplicate_sweeps_add_nothing(acme):
    """A second delivery of the sweep (or the next tick) finds nothing to do: no audit events, same denies."""
    grants = _due_grants(acme, roles=1)
    ids = [g.pk for g in grants]
    assert expiry.grants_expire_due() == len(ids)
    events = AuditEvent.objects.count()
    document = role_inline_policy(
        acme.partner.aws_account_id, acme.role.iam_name, policies.REVOCATIONS_POLICY_NAME
    )
    final = list(Grant.objects.filter(pk__in=ids).select_related("user", "role"))
    _assert_denies_match(acme, final)

    assert expiry.grants_expire_due() == 0
    assert _run_concurrently(expiry.grants_expire_due, expiry.grants_expire_due) == [0, 0]

    assert AuditEvent.objects.count() == events
    assert list(Grant.objects.filter(pk__in=ids).values_list("pk", "status", "ended_at", "deny_cutoff")) == [
        (g.pk, g.status, g.ended_at, g.deny_cutoff) for g in final
    ]
    assert (
        role_inline_policy(acme.partner.aws_account_id, acme.role.iam_name, policies.REVOCATIONS_POLICY_NAME)
        == document
    )
    assert _expired_events(ids) == Counter({str(g): 1 for g in ids})
    assert_audit_chain_whole()


def test_unreachable_aws_keeps_grants_expiring_until_a_later_sweep_puts_the_deny(acme, local_aws, settings):
    """A grant is only marked expired once AWS accepted the deny. While AWS is unreachable the grants wait
    (`expiring`, with the reason), the role's lease is released at once and the role backed off; a sweep during
    the backoff leaves it alone, and the first sweep after it, with AWS back, ends every grant exactly once."""
    grants = _due_grants(acme, roles=1)
    ids = [g.pk for g in grants]
    events_before = AuditEvent.objects.count()

    # AWS goes away. The sweep still claims the grants (a database update) and then fails to put the deny.
    _aws_unreachable(settings)
    assert expiry.grants_expire_due() == 0

    claimed = list(Grant.objects.filter(pk__in=ids))
    assert {g.status for g in claimed} == {Grant.Status.EXPIRING}
    assert {g.failure_reason for g in claimed} == {
        "Revocation pending: AWS could not be reached (EndpointConnectionError)."
    }
    assert all(g.ended_at is None and g.deny_cutoff and g.claimed_at for g in claimed)
    assert not AuditEvent.objects.filter(action="grant.expired").exists()
    # Claiming is not an audited state change; nothing else was written either.
    assert AuditEvent.objects.count() == events_before
    role = Role.objects.get(pk=acme.role.pk)
    assert role.iam_lease_until is None and role.iam_failures == 1
    assert timedelta(0) < role.iam_retry_at - timezone.now() <= timedelta(seconds=2)

    # AWS is back. During the backoff nothing is tried.
    _aws_back(settings, local_aws)
    assert (
        role_inline_policy(acme.partner.aws_account_id, acme.role.iam_name, policies.REVOCATIONS_POLICY_NAME)
        is None
    )
    assert expiry.grants_expire_due() == 0
    assert set(Grant.objects.filter(pk__in=ids).values_list("status", flat=True)) == {Grant.Status.EXPIRING}

    # After it, a sweep finishes them, once.
    _backoff_passes({acme.role.pk})
    assert expiry.grants_expire_due() == len(ids)
    final = list(Grant.objects.filter(pk__in=ids).select_related("user", "role"))
    assert {g.status for g in final} == {Grant.Status.EXPIRED}
    assert all(g.failure_reason == "" and g.ended_at for g in final)
    # The cutoff taken at the claim is kept, so sessions issued before it stay denied.
    assert [g.deny_cutoff for g in final] == [
        g.deny_cutoff for g in sorted(claimed, key=lambda g: ids.index(g.pk))
    ]
    _assert_denies_match(acme, final)
    assert expiry.grants_expire_due() == 0
    assert _expired_events(ids) == Counter({str(g): 1 for g in ids})
    assert_audit_chain_whole()
    assert User.objects.filter(membership__partner=acme.partner).count() == USERS


def test_when_a_partners_aws_does_not_answer_the_sweep_tries_it_once(acme, settings):
    """AWS answers every call with a proxy's 502 page (not even an AWS error): the sweep tries one of the
    partner's roles, backs the whole partner off, and does not spend the retries on each of its other roles."""
    from tests.peers.aws_proxy import AwsProxy

    grants = _due_grants(acme, roles=2)
    with AwsProxy(f"http://127.0.0.1:{free_port()}") as proxy:
        settings.AWS_ENDPOINT_URL = proxy.url
        aws.reset_caches()
        try:
            assert expiry.grants_expire_due() == 0
        finally:
            aws.reset_caches()
    # One call (getting into the partner's account; an unparsable answer is not retried by the client), not one
    # per role of the partner.
    assert proxy.counts() == {"AssumeRole": 1}
    roles = Role.objects.filter(pk__in={g.role_id for g in grants})
    assert all(r.iam_retry_at and r.iam_retry_at > timezone.now() for r in roles)
    assert {g.status for g in Grant.objects.filter(pk__in=[g.pk for g in grants])} == {Grant.Status.EXPIRING}
