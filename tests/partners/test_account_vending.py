"""Account vending against moto (server mode): the Partners OU, the guardrail SCPs, resuming after a crash, adoption.

What moto cannot show, and these tests therefore do not claim:
- moto's CreateAccount finishes at once (State SUCCEEDED in its first answer), so the IN_PROGRESS polling branch and
  the "creation in flight found by account name" branch never run here;
- moto does not refuse a second CreateAccount with an email already in the organization (AWS fails it with
  EMAIL_ALREADY_EXISTS), so "exactly one account" below is Porte's doing, not moto's;
- moto stores SCPs but evaluates none: the tests assert the exact documents attached, not their effect.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from partners import aws_account, services, tasks
from partners.models import BaselineStep, Partner
from portal import aws
from portal.models import AuditEvent
from tests.fixtures.domain import sign_in_as
from tests.helpers import locked_elsewhere, run_together

pytestmark = pytest.mark.django_db

EMAIL = "aws+initech@partners.porte.invalid"

GUARDRAILS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyLeavingTheOrganization",
            "Effect": "Deny",
            "Action": "organizations:LeaveOrganization",
            "Resource": "*",
        },
        {
            "Sid": "DenyCloudTrailTampering",
            "Effect": "Deny",
            "Action": [
                "cloudtrail:StopLogging",
                "cloudtrail:DeleteTrail",
                "cloudtrail:UpdateTrail",
                "cloudtrail:PutEventSelectors",
            ],
            "Resource": "*",
        },
    ],
}


def regions_scp(regions: list[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyOutsideAllowedRegions",
                "Effect": "Deny",
                "NotAction": [
                    "account:*",
                    "aws-portal:*",
                    "budgets:*",
                    "ce:*",
                    "cloudfront:*",
                    "cur:*",
                    "globalaccelerator:*",
                    "health:*",
                    "iam:*",
                    "organizations:*",
                    "pricing:*",
                    "route53:*",
                    "route53domains:*",
                    "s3:GetAccountPublicAccessBlock",
                    "s3:ListAllMyBuckets",
                    "shield:*",
                    "sts:*",
                    "support:*",
                    "trustedadvisor:*",
                    "waf:*",
                    "wafv2:*",
                ],
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:RequestedRegion": regions}},
            }
        ],
    }


def orgs() -> Any:
    return aws.management().organizations


def accounts_with_email(email: str) -> list[str]:
    return [
        a["Id"]
        for page in orgs().get_paginator("list_accounts").paginate()
        for a in page["Accounts"]
        if a["Email"].lower() == email.lower()
    ]


def parent_ou_name(account_id: str) -> str:
    parent = orgs().list_parents(ChildId=account_id)["Parents"][0]
    assert parent["Type"] == "ORGANIZATIONAL_UNIT", parent
    return str(
        orgs().describe_organizational_unit(OrganizationalUnitId=parent["Id"])["OrganizationalUnit"]["Name"]
    )


def scps_on(target_id: str) -> dict[str, dict[str, Any]]:
    """Name -> document of every customer SCP attached directly to the target."""
    found = {}
    for summary in orgs().list_policies_for_target(TargetId=target_id, Filter="SERVICE_CONTROL_POLICY")[
        "Policies"
    ]:
        if not summary["AwsManaged"]:
            found[summary["Name"]] = json.loads(
                orgs().describe_policy(PolicyId=summary["Id"])["Policy"]["Content"]
            )
    return found


def steps(partner: Partner) -> dict[str, BaselineStep]:
    return {s.name: s for s in BaselineStep.objects.filter(partner=partner)}


def new_partner(slug: str = "initech", **extra: Any) -> Partner:
    services.organization_ensure()
    return services.partner_create(
        name=f"{slug.title()} Corp", slug=slug, domains=[f"{slug}.example"], **extra
    )


def run_provision_task(partner: Partner) -> str:
    """The Celery task, run in this process (the worker tests run it in a real worker)."""
    return str(tasks.partner_provision.apply(args=[partner.pk], throw=True).result)


def test_vending_places_the_account_in_the_partners_ou_under_the_guardrails(
    local_aws: str, django_capture_on_commit_callbacks: Any
) -> None:
    partner = new_partner(aws_region="eu-west-1")
    Partner.objects.filter(pk=partner.pk).update(aws_extra_regions=["eu-central-1"])
    with django_capture_on_commit_callbacks() as queued:
        aws_account.partner_provisioning_request(partner=partner, email=EMAIL)
    assert len(queued) == 1  # the task is queued on commit, not before

    run_provision_task(partner)

    partner.refresh_from_db()
    assert accounts_with_email(EMAIL) == [partner.aws_account_id]
    assert parent_ou_name(partner.aws_account_id) == "Partners"
    ou_id = orgs().list_parents(ChildId=partner.aws_account_id)["Parents"][0]["Id"]
    assert scps_on(ou_id) == {"porte-partner-guardrails": GUARDRAILS}
    assert scps_on(partner.aws_account_id) == {
        "porte-regions-initech": regions_scp(["eu-central-1", "eu-west-1"])
    }
    by_name = steps(partner)
    assert {n: by_name[n].status for n in aws_account.ACCOUNT_STEPS} == dict.fromkeys(
        aws_account.ACCOUNT_STEPS, "done"
    )
    assert by_name["account"].resource_ids["account_id"] == partner.aws_account_id
    assert by_name["account"].resource_ids["how"] == "created"
    assert by_name["organizational_unit"].resource_ids["organizational_unit_id"] == ou_id
    assert list(
        AuditEvent.objects.filter(action="partner.account_provisioned").values_list("data", flat=True)
    ) == [{"aws_account_id": partner.aws_account_id, "how": "created"}]


def test_second_partner_shares_the_ou_and_its_guardrails_but_has_its_own_regions(local_aws: str) -> None:
    first = services.partner_account_provision(partner=new_partner("initech"), email=EMAIL, timeout=10)
    second = services.partner_account_provision(
        partner=new_partner("hooli", aws_region="us-east-1"),
        email="aws+hooli@partners.porte.invalid",
        timeout=10,
    )
    root = orgs().list_roots()["Roots"][0]["Id"]
    partners_ous = [
        ou
        for ou in orgs().list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"]
        if ou["Name"] == "Partners"
    ]
    assert len(partners_ous) == 1
    assert [
        t["TargetId"]
        for t in orgs().list_targets_for_policy(
            PolicyId=next(
                p["Id"]
                for p in orgs().list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
                if p["Name"] == "porte-partner-guardrails"
            )
        )["Targets"]
    ] == [partners_ous[0]["Id"]]
    assert scps_on(first.aws_account_id) == {"porte-regions-initech": regions_scp(["eu-west-1"])}
    assert scps_on(second.aws_account_id) == {"porte-regions-hooli": regions_scp(["us-east-1"])}


def test_crash_after_create_account_before_the_request_id_was_saved_adopts_that_account(
    local_aws: str,
) -> None:
    """The worker called CreateAccount and died before its transaction committed: Porte has neither the request
    id nor the account id. The resumed task finds the account by its email instead of creating a second one."""
    partner = new_partner()
    aws_account.partner_provisioning_request(partner=partner, email=EMAIL)
    created = orgs().create_account(Email=EMAIL, AccountName="porte-initech")["CreateAccountStatus"]
    account_id = orgs().describe_create_account_status(CreateAccountRequestId=created["Id"])[
        "CreateAccountStatus"
    ]["AccountId"]
    assert Partner.objects.get(pk=partner.pk).aws_account_request_id == ""

    run_provision_task(partner)
    run_provision_task(partner)  # a duplicate message changes nothing either

    partner.refresh_from_db()
    assert partner.aws_account_id == account_id
    assert accounts_with_email(EMAIL) == [account_id]
    assert steps(partner)["account"].resource_ids == {
        "account_id": account_id,
        "how": "existing with this email",
    }
    assert parent_ou_name(account_id) == "Partners"


def test_crash_after_the_request_id_was_saved_resumes_polling_it(local_aws: str) -> None:
    """CreateAccount ran and its request id was saved, then the worker died before polling. Running the task again
    polls that request (no second CreateAccount). The worker test does the same through beat's resume sweep."""
    partner = new_partner()
    aws_account.partner_provisioning_request(partner=partner, email=EMAIL)
    partner = aws_account.account_creation_start(partner=Partner.objects.get(pk=partner.pk))
    request_id = partner.aws_account_request_id
    assert request_id and not partner.aws_account_id
    assert steps(partner)["account"].status == "pending"
    assert steps(partner)["account"].resource_ids == {"create_account_request_id": request_id}

    run_provision_task(partner)

    partner.refresh_from_db()
    expected = orgs().describe_create_account_status(CreateAccountRequestId=request_id)["CreateAccountStatus"]
    assert partner.aws_account_id == expected["AccountId"]
    assert accounts_with_email(EMAIL) == [partner.aws_account_id]
    assert steps(partner)["account"].resource_ids == {
        "account_id": partner.aws_account_id,
        "how": "created",
        "create_account_request_id": request_id,
    }


def test_synchronous_provision_is_idempotent(local_aws: str) -> None:
    partner = services.partner_account_provision(partner=new_partner(), email=EMAIL, timeout=10)
    again = services.partner_account_provision(partner=partner, email=EMAIL, timeout=10)
    assert again.aws_account_id == partner.aws_account_id
    assert accounts_with_email(EMAIL) == [partner.aws_account_id]
    assert AuditEvent.objects.filter(action="partner.account_provisioned").count() == 1


# --- adoption ------------------------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    sign_in_as(client, staff)
    return client


def test_staff_adopt_an_account_already_in_the_organization(local_aws: str, staff_client: Client) -> None:
    partner = new_partner()
    status = orgs().create_account(Email="legacy@initech.example", AccountName="initech-legacy")[
        "CreateAccountStatus"
    ]
    account_id = orgs().describe_create_account_status(CreateAccountRequestId=status["Id"])[
        "CreateAccountStatus"
    ]["AccountId"]
    accounts_before = len(orgs().list_accounts()["Accounts"])

    response = staff_client.post(f"/staff/partners/{partner.slug}/provision/", {"account_id": account_id})

    assert response.status_code == 302
    partner.refresh_from_db()
    assert partner.aws_account_id == account_id
    assert steps(partner)["account"].resource_ids == {"account_id": account_id, "how": "adopted"}
    run_provision_task(partner)  # what the queued task does
    assert len(orgs().list_accounts()["Accounts"]) == accounts_before
    assert parent_ou_name(account_id) == "Partners"
    assert scps_on(account_id) == {"porte-regions-initech": regions_scp(["eu-west-1"])}


@pytest.mark.parametrize(
    "account_id", ["111111111111", "123456789012"], ids=["not-a-member", "management-account"]
)
def test_staff_cannot_adopt_an_account_outside_the_organization_or_the_management_account(
    local_aws: str, staff_client: Client, account_id: str
) -> None:
    partner = new_partner()
    assert orgs().describe_organization()["Organization"]["MasterAccountId"] == "123456789012"

    response = staff_client.post(
        f"/staff/partners/{partner.slug}/provision/", {"account_id": account_id}, follow=True
    )

    partner.refresh_from_db()
    assert partner.aws_account_id == ""
    assert not BaselineStep.objects.filter(partner=partner).exists()
    text = response.content.decode()
    assert "Nothing was queued" in text
    assert (
        ("not a member of Porte" in text) if account_id == "111111111111" else ("management account" in text)
    )


@pytest.mark.django_db(transaction=True)
def test_two_workers_starting_the_same_account_create_it_once_and_lock_nothing_across_aws(
    local_aws: str,
) -> None:
    """Two workers reach "create the account" for the same partner at once. Each claims the partner with a
    committed conditional update: one wins and calls CreateAccount, the other leaves; while CreateAccount is in
    flight another connection can lock the partner's row (NOWAIT), so no lock is held across the call."""
    partner = new_partner()
    aws_account.partner_provisioning_request(partner=partner, email=EMAIL)
    probes: list[bool] = []

    def probe(**_: object) -> None:
        probes.append(locked_elsewhere("partners_partner", [partner.pk]))

    client = orgs()
    client.meta.events.register("before-call.organizations.CreateAccount", probe)
    try:
        outcomes = run_together(
            lambda: aws_account.account_creation_start(partner=Partner.objects.get(pk=partner.pk)),
            lambda: aws_account.account_creation_start(partner=Partner.objects.get(pk=partner.pk)),
        )
    finally:
        client.meta.events.unregister("before-call.organizations.CreateAccount", probe)
    assert all(isinstance(o, Partner) for o in outcomes), outcomes
    assert probes == [False]  # CreateAccount ran once, with nothing locked
    partner.refresh_from_db()
    assert partner.aws_account_request_id and partner.aws_account_claimed_at is None
    run_provision_task(partner)
    partner.refresh_from_db()
    assert accounts_with_email(EMAIL) == [partner.aws_account_id]
