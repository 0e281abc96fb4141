"""Four-eyes: a change of a role's permissions, limits, eligibility or approval policy is a change request that
a second staff member approves; the author cannot. Only on approval is it applied (and IAM updated, shown in
moto)."""

from __future__ import annotations

import json

import pytest

from approvals.models import ApprovalPolicy, RoleChange
from grants import tasks
from grants.models import Role
from portal.models import AuditEvent
from tests.approvals.conftest import client_for, deliver, mails_to
from tests.helpers import role_inline_policy

pytestmark = pytest.mark.django_db

NEW_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeInstances"], "Resource": "*"}],
}


def _edit(client, role: Role, **overrides: object):  # type: ignore[no-untyped-def]
    data = {
        "name": role.name,
        "description": role.description,
        "inline_policy": json.dumps(role.inline_policy),
        "permissions_boundary_arn": role.permissions_boundary_arn,
        "max_duration_minutes": role.max_duration_minutes,
        "eligible_groups": "engineers",
        **overrides,
    }
    return client.post(f"/staff/roles/{role.pk}/", data)


@pytest.mark.aws
def test_a_policy_change_waits_for_a_second_staff_member_then_reaches_iam(acme, sam, sue):
    before = Role.objects.get(pk=acme.role.pk).inline_policy
    response = _edit(
        client_for(sam), acme.role, inline_policy=json.dumps(NEW_POLICY), max_duration_minutes=90
    )
    change = RoleChange.objects.get(role=acme.role)
    assert response.status_code == 302 and response["Location"] == f"/staff/changes/{change.pk}/"
    assert Role.objects.get(pk=acme.role.pk).inline_policy == before  # nothing applied yet
    assert not AuditEvent.objects.filter(action="role.updated").exists()
    # The other staff are asked to review it (not its author).
    [notice] = deliver("role.change_proposed")
    assert notice.recipients == ["sue@porte.example"]
    assert mails_to("sue@porte.example") == ["[Porte] Role change to approve: Read-only (Acme Corp)"]

    page = client_for(sue).get(f"/staff/changes/{change.pk}/").content.decode()
    assert '<span class="diff-add">+          &quot;ec2:DescribeInstances&quot;</span>' in page
    assert '<span class="diff-del">-          &quot;ec2:Describe*&quot;</span>' in page
    assert '<span class="diff-add">+  &quot;max_duration_s&quot;: 5400,</span>' in page

    # The author cannot approve their own change.
    own = client_for(sam).post(f"/staff/changes/{change.pk}/approve/", follow=True)
    assert "You proposed this change: another staff member must approve it." in own.content.decode()
    change.refresh_from_db()
    assert change.status == RoleChange.Status.PENDING

    client_for(sue).post(f"/staff/changes/{change.pk}/approve/")
    change.refresh_from_db()
    assert change.status == RoleChange.Status.APPLIED and change.decided_by == sue
    role = Role.objects.get(pk=acme.role.pk)
    assert role.inline_policy == NEW_POLICY and role.max_duration_minutes == 90
    updated = AuditEvent.objects.get(action="role.updated", object_id=str(role.pk))
    assert updated.actor_id == sue.pk and set(updated.data) == {"policy", "max_duration_s"}
    tasks.role_provision.apply(args=[role.pk])
    assert (
        role_inline_policy(acme.partner.aws_account_id, "porte-readonly", "porte-permissions") == NEW_POLICY
    )


def test_eligibility_and_approval_policy_changes_are_four_eyes_too(acme, sam, sue):
    _edit(client_for(sam), acme.role, eligible_groups="engineers contractors")
    eligibility = RoleChange.objects.get(role=acme.role, status="pending")
    assert sorted(acme.role.eligibilities.values_list("group", flat=True)) == ["engineers"]
    client_for(sue).post(f"/staff/changes/{eligibility.pk}/approve/")
    assert sorted(acme.role.eligibilities.values_list("group", flat=True)) == ["contractors", "engineers"]

    response = client_for(sue).post(
        f"/staff/roles/{acme.role.pk}/approval/",
        {
            "approvals_required": 2,
            "approvers": "either",
            "pending_ttl_minutes": 60,
            "break_glass_allowed": "on",
            "reason": "Production access needs two approvers",
        },
    )
    change = RoleChange.objects.get(role=acme.role, status="pending")
    assert response["Location"] == f"/staff/changes/{change.pk}/"
    assert not ApprovalPolicy.objects.filter(role=acme.role).exists()
    client_for(sam).post(f"/staff/changes/{change.pk}/approve/")
    policy = ApprovalPolicy.objects.get(role=acme.role)
    assert (policy.approvals_required, policy.approvers, policy.break_glass_allowed) == (2, "either", True)


def test_name_only_edits_apply_at_once_and_stale_changes_are_not_applied(acme, sam, sue):
    _edit(client_for(sam), acme.role, name="Read-only (EC2)")
    assert Role.objects.get(pk=acme.role.pk).name == "Read-only (EC2)"
    assert not RoleChange.objects.exists()

    role = Role.objects.get(pk=acme.role.pk)
    _edit(client_for(sam), role, max_duration_minutes=30)
    _edit(client_for(sue), role, max_duration_minutes=45)
    first, second = RoleChange.objects.order_by("id")
    client_for(sue).post(f"/staff/changes/{first.pk}/approve/")
    # Sue's own change was proposed against the role as it was before: applying it now would hide Sam's change.
    client_for(sam).post(f"/staff/changes/{second.pk}/approve/")
    second.refresh_from_db()
    assert second.status == RoleChange.Status.STALE
    assert Role.objects.get(pk=acme.role.pk).max_duration_minutes == 30


def test_a_rejected_change_is_not_applied_and_the_author_is_told(acme, sam, sue):
    _edit(client_for(sam), acme.role, max_duration_minutes=720)
    change = RoleChange.objects.get()
    client_for(sue).post(f"/staff/changes/{change.pk}/reject/", {"reason": "12 hours is too long"})
    change.refresh_from_db()
    assert change.status == RoleChange.Status.REJECTED
    assert Role.objects.get(pk=acme.role.pk).max_duration_minutes == 120
    assert AuditEvent.objects.get(action="role.change_rejected").data == {"reason": "12 hours is too long"}
