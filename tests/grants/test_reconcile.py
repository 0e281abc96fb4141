"""The reconciler makes IAM match the database, and says (audits) what it repaired.

Drift is made by editing the role directly in moto, as someone with IAM rights in the partner account would.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from approvals.services import request_create
from grants import policies
from grants.models import Grant
from grants.services import activation, expiry, reconciliation, revocation
from portal import aws
from portal.models import AuditEvent
from tests.fixtures.domain import World, make_member
from tests.helpers import purge_broker, role_inline_policy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.aws]


@pytest.fixture(autouse=True)
def _no_stray_activations():  # type: ignore[no-untyped-def]
    yield
    purge_broker()


def _iam(world: World):  # type: ignore[no-untyped-def]
    return aws.partner(world.partner.aws_account_id).iam


def _drift_events() -> list[list[str]]:
    return [e.data["drift"] for e in AuditEvent.objects.filter(action="role.drift_repaired")]


def test_nothing_to_repair_writes_no_audit_event(acme: World) -> None:
    assert reconciliation.roles_reconcile() == {}
    assert _drift_events() == []


def test_trust_policy_edited_in_aws_is_restored_and_audited(acme: World) -> None:
    iam = _iam(acme)
    loose = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.update_assume_role_policy(RoleName="porte-readonly", PolicyDocument=json.dumps(loose))

    assert reconciliation.roles_reconcile() == {acme.role.pk: ["trust_policy"]}

    restored = iam.get_role(RoleName="porte-readonly")["Role"]["AssumeRolePolicyDocument"]
    assert restored == policies.trust_policy(
        broker_arn=aws.broker_principal_arn(), external_id=acme.partner.external_id
    )
    assert _drift_events() == [["trust_policy"]]
    # Repaired once: the next pass finds nothing.
    assert reconciliation.roles_reconcile() == {}


def test_extra_permissions_added_in_aws_are_removed(acme: World) -> None:
    iam = _iam(acme)
    iam.put_role_policy(
        RoleName="porte-readonly",
        PolicyName="backdoor",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    admin = iam.create_policy(
        PolicyName="Admin",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    iam.attach_role_policy(RoleName="porte-readonly", PolicyArn=admin["Policy"]["Arn"])
    iam.put_role_policy(
        RoleName="porte-readonly",
        PolicyName="porte-permissions",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )

    repaired = reconciliation.roles_reconcile()[acme.role.pk]

    assert sorted(repaired) == [
        "attached_policy:Admin",
        "inline_policy:backdoor",
        "permissions_policy",
    ]
    assert iam.list_role_policies(RoleName="porte-readonly")["PolicyNames"] == ["porte-permissions"]
    assert iam.list_attached_role_policies(RoleName="porte-readonly")["AttachedPolicies"] == []
    assert (
        role_inline_policy(acme.partner.aws_account_id, "porte-readonly", "porte-permissions")
        == acme.role.inline_policy
    )


def test_deleted_role_is_recreated(acme: World) -> None:
    iam = _iam(acme)
    iam.delete_role_policy(RoleName="porte-readonly", PolicyName="porte-permissions")
    iam.delete_role(RoleName="porte-readonly")

    assert reconciliation.roles_reconcile() == {acme.role.pk: ["role_missing"]}
    assert (
        iam.get_role(RoleName="porte-readonly")["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"]
        == acme.role.permissions_boundary_arn
    )


def _ended_grant(world: World, username: str) -> Grant:
    user = make_member(world.partner, username)
    request = request_create(
        requester=user, role=world.role, justification="Inventory check 42", duration=timedelta(minutes=30)
    )
    activation.grant_activate(grant_id=request.grant.pk)
    # Simulates the grant's time running out (the sweeper reads ends_at from the database).
    now = timezone.now()
    Grant.objects.filter(pk=request.grant.pk).update(
        starts_at=now - timedelta(minutes=5), ends_at=now - timedelta(seconds=1)
    )
    assert expiry.grants_expire_due() == 1
    return Grant.objects.get(pk=request.grant.pk)


def test_a_revocation_deny_removed_in_aws_is_put_back(acme: World) -> None:
    grant = _ended_grant(acme, "bea")
    _iam(acme).delete_role_policy(RoleName="porte-readonly", PolicyName="porte-revocations")

    assert reconciliation.roles_reconcile() == {acme.role.pk: ["revocations"]}
    document = role_inline_policy(acme.partner.aws_account_id, "porte-readonly", "porte-revocations")
    assert document is not None
    assert (
        document["Statement"][0]["Condition"]["StringEquals"]["aws:SourceIdentity"]
        == grant.user.source_identity
    )


def test_revocations_older_than_the_maximum_session_are_pruned_quietly(acme: World) -> None:
    grant = _ended_grant(acme, "cid")
    # Every session the deny targeted is dead once the role's maximum session has passed since the cutoff.
    Grant.objects.filter(pk=grant.pk).update(deny_cutoff=timezone.now() - timedelta(hours=3))

    assert reconciliation.roles_reconcile() == {}
    assert role_inline_policy(acme.partner.aws_account_id, "porte-readonly", "porte-revocations") is None
    assert _drift_events() == []


def test_three_hundred_revocations_on_one_role_are_written_in_the_compact_form(acme: World) -> None:
    """300 people, each ended at a different second within the role's maximum session: the per-person form
    would be ~70 kB; Porte writes one per-grant deny that IAM's 10,240-character inline limit accepts."""
    users = [make_member(acme.partner, f"user{i:03d}") for i in range(300)]
    now = timezone.now()
    grants = []
    for i, user in enumerate(users):
        request = request_create(
            requester=user, role=acme.role, justification="Mass revocation", duration=timedelta(minutes=30)
        )
        grants.append(request.grant.pk)
        Grant.objects.filter(pk=request.grant.pk).update(
            status=Grant.Status.EXPIRED, ended_at=now, deny_cutoff=now - timedelta(seconds=i)
        )
    expiry.role_finish_endings(role_id=acme.role.pk)

    document = role_inline_policy(acme.partner.aws_account_id, "porte-readonly", "porte-revocations")
    assert document == policies.ended_grants_policy(grants)
    aggregate = policies.size(document) + policies.size(acme.role.inline_policy)
    assert aggregate <= policies.INLINE_POLICIES_MAX_CHARS, aggregate


def test_emergency_revoke_all_sessions_puts_a_deny_for_every_older_session(acme: World, staff) -> None:  # type: ignore[no-untyped-def]
    role = revocation.role_revoke_all_sessions(role=acme.role, reason="key leaked", actor=staff)
    expiry.role_finish_endings(role_id=role.pk)  # what the task queued on commit does

    document = role_inline_policy(acme.partner.aws_account_id, "porte-readonly", "porte-revocations")
    assert document == {
        "Version": "2012-10-17",
        "Statement": [policies.revoke_all_statement(role.sessions_revoked_before)],
    }
    assert AuditEvent.objects.filter(action="role.sessions_revoked", object_id=str(role.pk)).count() == 1
