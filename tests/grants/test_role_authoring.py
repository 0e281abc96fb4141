"""Staff author scoped roles: templates, validation before anything reaches AWS, idempotent provisioning."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from approvals.models import RoleChange
from grants import tasks
from grants.models import Role
from portal import audit
from portal.models import AuditEvent
from tests.fixtures.domain import World, make_staff, sign_in_as
from tests.helpers import role_inline_policy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    sign_in_as(client, staff)
    return client


def _post(client: Client, world: World, **overrides: object):  # type: ignore[no-untyped-def]
    data = {
        "name": "VPC operator",
        "slug": "vpc-operator",
        "description": "Start and stop tagged instances",
        "inline_policy": json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["ec2:StartInstances", "ec2:StopInstances"],
                        "Resource": f"arn:aws:ec2:eu-west-1:{world.partner.aws_account_id}:instance/*",
                        "Condition": {"StringEquals": {"aws:ResourceTag/porte:partner": world.partner.slug}},
                    }
                ],
            }
        ),
        "permissions_boundary_arn": world.role.permissions_boundary_arn,
        "max_duration_minutes": 60,
        "eligible_groups": "operators, engineers",
    }
    data.update(overrides)
    return client.post(f"/staff/partners/{world.partner.slug}/roles/new/", data)


@pytest.mark.aws
def test_template_prefills_a_scoped_policy(staff_client: Client, acme: World) -> None:
    page = staff_client.get("/staff/partners/acme/roles/new/?template=vpc-operator")
    assert page.status_code == 200
    assert "aws:ResourceTag/porte:partner" in page.content.decode()
    assert f"arn:aws:iam::{acme.partner.aws_account_id}:policy/porte-boundary" in page.content.decode()


@pytest.mark.aws
def test_valid_role_is_saved_audited_and_provisioned(
    staff_client: Client, acme: World, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks() as queued:
        response = _post(staff_client, acme)
    assert response.status_code == 302, response.content.decode()[:2000]
    role = Role.objects.get(partner=acme.partner, slug="vpc-operator")
    assert AuditEvent.objects.filter(action="role.created", object_id=str(role.pk)).count() == 1
    # the provisioning task, queued on commit (besides the audit chain's request to be sealed)
    assert len([c for c in queued if c is not audit.ask_for_seal]) == 1
    # Four-eyes: nobody may request the new role until a second staff member approves its eligibility.
    assert not role.eligibilities.exists()
    change = RoleChange.objects.get(role=role, status=RoleChange.Status.PENDING)
    second = Client()
    sign_in_as(second, make_staff("sue"))
    second.post(f"/staff/changes/{change.pk}/approve/")
    assert sorted(role.eligibilities.values_list("group", flat=True)) == ["engineers", "operators"]
    tasks.role_provision.apply(args=[role.pk])  # what the worker runs
    assert (
        role_inline_policy(acme.partner.aws_account_id, "porte-vpc-operator", "porte-permissions")
        == role.inline_policy
    )


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]},
            "administrator access",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObjct", "Resource": "*"}],
            },
            "Unknown action s3:GetObjct",
        ),
        (
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}],
            },
            "NotAction",
        ),
        ({"Statement": [{"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}]}, "Version"),
    ],
)
def test_unsafe_or_broken_policies_are_refused_with_the_reason(
    staff_client: Client, acme: World, policy: dict, message: str
) -> None:
    response = _post(staff_client, acme, inline_policy=json.dumps(policy))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Role.objects.filter(slug="vpc-operator").exists()


def test_not_json_and_missing_boundary_are_refused(staff_client: Client, acme: World) -> None:
    assert "Not valid JSON" in _post(staff_client, acme, inline_policy="{nope").content.decode()
    response = _post(staff_client, acme, permissions_boundary_arn="")
    assert response.status_code == 400
    assert not Role.objects.filter(slug="vpc-operator").exists()


@pytest.mark.aws
def test_edit_is_audited_with_the_change_and_reaches_iam(staff_client: Client, acme: World) -> None:
    new_policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}],
    }
    response = staff_client.post(
        f"/staff/roles/{acme.role.pk}/",
        {
            "name": "Read-only",
            "description": "",
            "inline_policy": json.dumps(new_policy),
            "permissions_boundary_arn": acme.role.permissions_boundary_arn,
            "max_duration_minutes": 90,
            "eligible_groups": "engineers",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    # Four-eyes: the edit is a change request until a second staff member approves it.
    change = RoleChange.objects.get(role=acme.role, status=RoleChange.Status.PENDING)
    assert not AuditEvent.objects.filter(action="role.updated").exists()
    second = Client()
    sign_in_as(second, make_staff("sue"))
    second.post(f"/staff/changes/{change.pk}/approve/")
    event = AuditEvent.objects.get(action="role.updated", object_id=str(acme.role.pk))
    assert set(event.data) == {"policy", "max_duration_s"}
    tasks.role_provision.apply(args=[acme.role.pk])
    assert (
        role_inline_policy(acme.partner.aws_account_id, "porte-readonly", "porte-permissions") == new_policy
    )


def test_partner_users_get_404_on_role_pages(acme: World, alice) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    sign_in_as(client, alice)
    assert client.get("/staff/partners/acme/roles/").status_code == 404
    assert client.get("/staff/partners/acme/roles/new/").status_code == 404
    assert client.get(f"/staff/roles/{acme.role.pk}/").status_code == 404
    assert client.post(f"/staff/roles/{acme.role.pk}/revoke-sessions/", {"reason": "x"}).status_code == 404


def test_revoke_all_sessions_needs_a_reason(staff_client: Client, acme: World) -> None:
    staff_client.post(f"/staff/roles/{acme.role.pk}/revoke-sessions/", {"reason": ""})
    assert Role.objects.get(pk=acme.role.pk).sessions_revoked_before is None
    staff_client.post(f"/staff/roles/{acme.role.pk}/revoke-sessions/", {"reason": "credentials leaked"})
    assert Role.objects.get(pk=acme.role.pk).sessions_revoked_before is not None


@pytest.mark.aws
def test_a_saved_roles_lint_notes_are_said_not_counted(staff_client: Client, acme: World) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ec2:RunInstances"], "Resource": "*"}],
    }
    response = _post(staff_client, acme, inline_policy=json.dumps(policy))
    assert response.status_code == 302
    listing = staff_client.get(response["Location"]).content.decode()
    assert "Policy lint (parliament): LOW: Unnecessary use of Resource *" in listing
    assert "Lint notes: 1." not in listing
