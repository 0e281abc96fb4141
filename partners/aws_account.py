"""Account vending: each partner's dedicated AWS account, in the Partners OU, under guardrail SCPs.

Vending is resumable. The CreateAccount request id is saved before anyone polls it, so a worker that dies while
AWS creates the account leaves a row the next run resumes; and before any CreateAccount Porte looks for an
account (or a creation in flight) it already asked for, so a crash between the call and the save never yields a
second account. Staff may instead adopt an account that is already a member of the organization.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from partners import network
from partners.models import BaselineStep, Partner
from partners.steps import (
    Status,
    Step,
    StepFailed,
    StepPending,
    baseline_step_record,
    step_run,
    step_wait,
)
from portal import aws, queue
from portal.audit import audit_record
from portal.models import User

if TYPE_CHECKING:
    from mypy_boto3_organizations import OrganizationsClient

ACCOUNT_STEPS = [Step.ACCOUNT, Step.ORGANIZATIONAL_UNIT, Step.GUARDRAILS]
GUARDRAILS_POLICY_NAME = "porte-partner-guardrails"
_SCP: Final = "SERVICE_CONTROL_POLICY"

# Services that are global, or whose calls AWS routes to us-east-1, so a region condition would break them (AWS's
# documented "deny access outside the requested regions" example exempts the same kind of list).
GLOBAL_SERVICE_ACTIONS = [
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
]


def guardrails_policy_document() -> dict[str, Any]:
    """SCP on the Partners OU: no partner account can leave the organization or blind the audit trail."""
    return {
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


def regions_policy_document(regions: list[str]) -> dict[str, Any]:
    """SCP on one partner's account: nothing outside its regions, except global services.

    It is attached to the account rather than the shared OU because the regions are per partner: two region
    denies on one OU would leave only the regions they have in common."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyOutsideAllowedRegions",
                "Effect": "Deny",
                "NotAction": GLOBAL_SERVICE_ACTIONS,
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:RequestedRegion": sorted(regions)}},
            }
        ],
    }


def regions_policy_name(partner: Partner) -> str:
    return f"porte-regions-{partner.slug}"


def account_email_default(partner: Partner) -> str:
    return str(settings.AWS_PARTNER_ACCOUNT_EMAIL).format(slug=partner.slug)


# --- requesting (staff) --------------------------------------------------------------------------------------


@transaction.atomic
def partner_provisioning_request(*, partner: Partner, email: str = "", actor: User | None = None) -> Partner:
    """Staff asked for the partner's account and network: mark unfinished steps pending and queue the work."""
    partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
    if partner.status == Partner.Status.OFFBOARDED:
        raise ValueError("An offboarded partner gets no AWS resources.")
    if not partner.aws_account_id:
        if email and partner.aws_account_request_id and email.lower() != partner.aws_account_email.lower():
            raise ValueError(
                f"An account for {partner.aws_account_email} is being created already; it cannot change now."
            )
        partner.aws_account_email = email or partner.aws_account_email or account_email_default(partner)
        partner.save(update_fields=["aws_account_email"])
    now = timezone.now()
    for name in [*ACCOUNT_STEPS, *network.NETWORK_STEPS]:
        step, created = BaselineStep.objects.get_or_create(partner=partner, name=name)
        if created or step.status == Status.FAILED:
            step.status, step.error, step.updated_at = Status.PENDING, "", now
            step.save(update_fields=["status", "error", "updated_at"])
    audit_record(
        action="partner.provisioning_requested",
        obj=partner,
        actor=actor,
        partner_id=partner.pk,
        data={"email": partner.aws_account_email, "aws_account_id": partner.aws_account_id},
    )
    queue.on_commit("partners.tasks.partner_provision", partner.pk)
    return partner


def partner_account_adopt(*, partner: Partner, account_id: str, actor: User | None = None) -> Partner:
    """Give the partner an AWS account that already exists, once AWS confirms it is an active member of
    Porte's organization (and not the management account, which no SCP constrains)."""
    account_id = account_id.strip()
    if partner.aws_account_request_id and not partner.aws_account_id:
        raise aws.AwsRejected(
            "CreationInProgress", f"An account is being created for {partner.name} already (CreateAccount)."
        )
    if not re.fullmatch(r"[0-9]{12}", account_id):
        raise aws.AwsRejected("InvalidAccountId", "An AWS account id is 12 digits.")
    orgs = aws.management().organizations
    organization = orgs.describe_organization()["Organization"]
    try:
        account = orgs.describe_account(AccountId=account_id)["Account"]
    except aws.AwsNotFound as exc:
        raise aws.AwsRejected(
            "AccountNotInOrganization",
            f"Account {account_id} is not a member of Porte's organization: invite it first.",
        ) from exc
    if account_id == organization.get("MasterAccountId"):
        raise aws.AwsRejected(
            "ManagementAccount", "The organization's management account cannot be a partner's."
        )
    if account.get("Status", "ACTIVE") != "ACTIVE":
        raise aws.AwsRejected("AccountNotActive", f"Account {account_id} is {account.get('Status')}.")
    return _account_record(partner_id=partner.pk, account_id=account_id, how="adopted", actor=actor)


# --- vending (task) ------------------------------------------------------------------------------------------


def partner_account_ensure(*, partner_id: int) -> str:
    """One pass over the account steps; returns the account step's status (pending while AWS creates it)."""
    partner = Partner.objects.get(pk=partner_id)
    # A pending account step is saved on every poll: its fresh updated_at tells the resume sweeper that this
    # partner is not stuck.
    state = step_run(partner, Step.ACCOUNT, lambda: _account_vend(partner))
    if state != Status.DONE:
        for name in ACCOUNT_STEPS[1:]:
            step_wait(partner, name, [Step.ACCOUNT])
        return state
    partner.refresh_from_db()
    placed = step_run(partner, Step.ORGANIZATIONAL_UNIT, lambda: _account_place(partner))
    if placed == Status.DONE:
        step_run(partner, Step.GUARDRAILS, lambda: _guardrails_ensure(partner))
    else:
        step_wait(partner, Step.GUARDRAILS, [Step.ORGANIZATIONAL_UNIT])
    return Status.DONE


def _account_vend(partner: Partner) -> dict[str, Any]:
    if partner.aws_account_id:
        return _account_resources(partner, how="recorded")
    if not partner.aws_account_request_id:
        partner = account_creation_start(partner=partner)
        if partner.aws_account_id:
            return _account_resources(partner, how="existing")
        if not partner.aws_account_request_id:
            raise StepPending(
                "Another worker is starting the account's creation; checking again shortly.", {}
            )
    return _account_creation_poll(partner)


def account_creation_start(*, partner: Partner) -> Partner:
    """Adopt the partner's account if AWS already has it (or is creating it), else call CreateAccount; either
    way the request id is saved before anyone polls it.

    Two workers on the same partner cannot both decide to create: each first claims the partner with a
    conditional update, committed before any AWS call (no row lock is held across one); the loser leaves. A
    failed call releases the claim at once. If the process dies after CreateAccount but before recording it,
    the claim runs out and the next run finds the creation in flight (by account name) or the finished account
    (by email) and adopts it instead of creating another."""
    now = timezone.now()
    with transaction.atomic():
        claimed = (
            Partner.objects.filter(pk=partner.pk, aws_account_id="", aws_account_request_id="")
            .exclude(aws_account_email="")
            .filter(
                Q(aws_account_claimed_at__isnull=True)
                | Q(aws_account_claimed_at__lt=now - timedelta(seconds=settings.IAM_LEASE_SECONDS))
            )
            .update(aws_account_claimed_at=now)
        )
    partner = Partner.objects.get(pk=partner.pk)
    if not claimed:
        if not partner.aws_account_email and not partner.aws_account_id:
            raise StepFailed("No account email: use “Provision AWS account and network” to give one.")
        return partner  # recorded already, or another worker is at it
    orgs = aws.management().organizations
    try:
        existing = _account_by_email(orgs, partner.aws_account_email)
        request_id = None if existing else _creation_in_flight(orgs, _account_name(partner))
        how = "in flight" if request_id else "created"
        if existing is None and request_id is None:
            request_id = str(
                orgs.create_account(
                    Email=partner.aws_account_email,
                    AccountName=_account_name(partner),
                    Tags=[{"Key": "porte:partner", "Value": partner.slug}],
                )["CreateAccountStatus"]["Id"]
            )
    except BaseException:
        Partner.objects.filter(pk=partner.pk, aws_account_claimed_at=now).update(aws_account_claimed_at=None)
        raise
    if existing is not None:
        partner = _account_record(partner_id=partner.pk, account_id=existing, how="existing with this email")
        Partner.objects.filter(pk=partner.pk).update(aws_account_claimed_at=None)
        return partner
    assert request_id is not None
    with transaction.atomic():
        partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
        partner.aws_account_request_id, partner.aws_account_claimed_at = request_id, None
        partner.save(update_fields=["aws_account_request_id", "aws_account_claimed_at"])
        audit_record(
            action="partner.account_creation_started",
            obj=partner,
            partner_id=partner.pk,
            data={"request_id": request_id, "email": partner.aws_account_email, "how": how},
        )
        baseline_step_record(
            partner=partner,
            name=Step.ACCOUNT,
            status=Status.PENDING,
            resource_ids={"create_account_request_id": request_id},
        )
    return partner


def _account_creation_poll(partner: Partner) -> dict[str, Any]:
    orgs = aws.management().organizations
    request_id = partner.aws_account_request_id
    status = orgs.describe_create_account_status(CreateAccountRequestId=request_id)["CreateAccountStatus"]
    state = status["State"]
    if state == "IN_PROGRESS":
        raise StepPending(
            f"AWS is creating the account (request {request_id}); checking again shortly.",
            {"create_account_request_id": request_id},
        )
    if state == "SUCCEEDED":
        partner = _account_record(partner_id=partner.pk, account_id=str(status["AccountId"]), how="created")
        return _account_resources(partner, how="created")
    reason = str(status.get("FailureReason") or "unknown")
    if reason == "EMAIL_ALREADY_EXISTS":
        existing = _account_by_email(orgs, partner.aws_account_email)
        if existing:
            partner = _account_record(
                partner_id=partner.pk, account_id=existing, how="existing with this email"
            )
            return _account_resources(partner, how="existing with this email")
    with transaction.atomic():
        # The request is over: forget it, so that asking again (after fixing the cause) creates anew.
        locked = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
        locked.aws_account_request_id = ""
        locked.save(update_fields=["aws_account_request_id"])
        audit_record(
            action="partner.account_creation_failed",
            obj=locked,
            partner_id=locked.pk,
            data={"request_id": request_id, "reason": reason},
        )
    raise StepFailed(
        f"CreateAccount {request_id} failed: {reason}. Fix the cause (e.g. another email), then provision again.",
        {"create_account_request_id": request_id},
    )


def _account_record(*, partner_id: int, account_id: str, how: str, actor: User | None = None) -> Partner:
    with transaction.atomic():
        partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner_id)
        if partner.aws_account_id == account_id:
            return partner
        if partner.aws_account_id:
            raise aws.AwsRejected(
                "AccountAlreadySet", f"{partner.name} already has account {partner.aws_account_id}."
            )
        other = Partner.objects.filter(aws_account_id=account_id).exclude(pk=partner.pk).first()
        if other is not None:
            raise aws.AwsRejected("AccountInUse", f"Account {account_id} belongs to {other.name} already.")
        partner.aws_account_id = account_id
        partner.save(update_fields=["aws_account_id"])
        audit_record(
            action="partner.account_provisioned",
            obj=partner,
            actor=actor,
            partner_id=partner.pk,
            data={"aws_account_id": account_id, "how": how},
        )
        baseline_step_record(
            partner=partner,
            name=Step.ACCOUNT,
            status=Status.DONE,
            resource_ids=_account_resources(partner, how=how),
            actor=actor,
        )
    return partner


def _account_resources(partner: Partner, *, how: str) -> dict[str, Any]:
    step = BaselineStep.objects.filter(partner=partner, name=Step.ACCOUNT).first()
    if step and step.resource_ids.get("account_id") == partner.aws_account_id:
        return step.resource_ids  # keep the first run's account of how it got there
    resources = {"account_id": partner.aws_account_id, "how": how}
    if partner.aws_account_request_id:
        resources["create_account_request_id"] = partner.aws_account_request_id
    return resources


def _account_name(partner: Partner) -> str:
    return f"porte-{partner.slug}"


def _account_by_email(orgs: OrganizationsClient, email: str) -> str | None:
    for page in orgs.get_paginator("list_accounts").paginate():
        for account in page["Accounts"]:
            if account["Email"].lower() == email.lower():
                return str(account["Id"])
    return None


def _creation_in_flight(orgs: OrganizationsClient, account_name: str) -> str | None:
    for page in orgs.get_paginator("list_create_account_status").paginate(States=["IN_PROGRESS"]):
        for status in page["CreateAccountStatuses"]:
            if status.get("AccountName") == account_name:
                return str(status["Id"])
    return None


# --- placement and guardrails --------------------------------------------------------------------------------


def organization_ensure() -> str:
    """The AWS Organization partner accounts are vended into; created when the management account has none
    (the local emulator starts empty). The vending task itself never creates an organization."""
    orgs = aws.management().organizations
    try:
        return str(orgs.describe_organization()["Organization"]["Id"])
    except aws.AwsNotFound:
        return str(orgs.create_organization(FeatureSet="ALL")["Organization"]["Id"])


def partners_ou_ensure() -> tuple[str, str]:
    """(root id, Partners OU id): the OU is made under the root when missing, with SCPs enabled on the root."""
    orgs = aws.management().organizations
    root = orgs.list_roots()["Roots"][0]
    enabled = {t["Type"] for t in root.get("PolicyTypes", []) if t.get("Status") == "ENABLED"}
    if _SCP not in enabled:
        with contextlib.suppress(aws.AwsAlreadyExists):
            orgs.enable_policy_type(RootId=root["Id"], PolicyType=_SCP)
    ou_id = _ou_by_name(orgs, root["Id"], settings.AWS_PARTNERS_OU_NAME)
    if ou_id is None:
        try:
            ou_id = str(
                orgs.create_organizational_unit(
                    ParentId=root["Id"],
                    Name=settings.AWS_PARTNERS_OU_NAME,
                    Tags=[{"Key": "porte:managed", "Value": "true"}],
                )["OrganizationalUnit"]["Id"]
            )
        except aws.AwsAlreadyExists:
            ou_id = _ou_by_name(orgs, root["Id"], settings.AWS_PARTNERS_OU_NAME)
    if ou_id is None:
        raise aws.AwsUnavailable("The Partners organizational unit is being created; retrying.")
    return str(root["Id"]), ou_id


def _ou_by_name(orgs: OrganizationsClient, parent_id: str, name: str) -> str | None:
    for page in orgs.get_paginator("list_organizational_units_for_parent").paginate(ParentId=parent_id):
        for ou in page["OrganizationalUnits"]:
            if ou["Name"] == name:
                return str(ou["Id"])
    return None


def _account_place(partner: Partner) -> dict[str, Any]:
    _, ou_id = partners_ou_ensure()
    orgs = aws.management().organizations
    parent = orgs.list_parents(ChildId=partner.aws_account_id)["Parents"][0]["Id"]
    if parent != ou_id:
        orgs.move_account(AccountId=partner.aws_account_id, SourceParentId=parent, DestinationParentId=ou_id)
    return {"organizational_unit_id": ou_id, "account_id": partner.aws_account_id}


def _guardrails_ensure(partner: Partner) -> dict[str, Any]:
    _, ou_id = partners_ou_ensure()
    orgs = aws.management().organizations
    shared = _scp_ensure(
        orgs,
        name=GUARDRAILS_POLICY_NAME,
        document=guardrails_policy_document(),
        description="Porte: partner accounts stay in the organization and keep CloudTrail on",
    )
    _scp_attach(orgs, shared, ou_id)
    regional = _scp_ensure(
        orgs,
        name=regions_policy_name(partner),
        document=regions_policy_document(partner.allowed_regions),
        description=f"Porte: {partner.slug} works only in its regions",
    )
    _scp_attach(orgs, regional, partner.aws_account_id)
    return {
        "guardrails_policy_id": shared,
        "organizational_unit_id": ou_id,
        "regions_policy_id": regional,
        "regions": partner.allowed_regions,
    }


def _scp_ensure(orgs: OrganizationsClient, *, name: str, document: dict[str, Any], description: str) -> str:
    """The SCP called `name` with exactly `document` (an edited one is put back); returns its id."""
    for page in orgs.get_paginator("list_policies").paginate(Filter=_SCP):
        for summary in page["Policies"]:
            if summary["Name"] == name:
                policy_id = str(summary["Id"])
                current = orgs.describe_policy(PolicyId=policy_id)["Policy"]["Content"]
                if json.loads(current) != document:
                    orgs.update_policy(PolicyId=policy_id, Content=json.dumps(document))
                return policy_id
    return str(
        orgs.create_policy(
            Name=name,
            Type=_SCP,
            Description=description,
            Content=json.dumps(document),
            Tags=[{"Key": "porte:managed", "Value": "true"}],
        )["Policy"]["PolicySummary"]["Id"]
    )


def _scp_attach(orgs: OrganizationsClient, policy_id: str, target_id: str) -> None:
    for page in orgs.get_paginator("list_policies_for_target").paginate(TargetId=target_id, Filter=_SCP):
        if any(p["Id"] == policy_id for p in page["Policies"]):
            return
    with contextlib.suppress(aws.AwsAlreadyExists):
        orgs.attach_policy(PolicyId=policy_id, TargetId=target_id)


# --- synchronous vending (demo command, test fixtures) -------------------------------------------------------


def partner_account_provision(
    *, partner: Partner, email: str, actor: User | None = None, timeout: float = 60.0
) -> Partner:
    """Vend (or resume vending) the partner's account, place it and attach its guardrails, waiting up to
    `timeout` seconds for AWS; what the console's task does, for callers that need the account right away."""
    if not partner.aws_account_id and not partner.aws_account_email:
        with transaction.atomic():
            locked = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
            if not locked.aws_account_email:
                locked.aws_account_email = email
                locked.save(update_fields=["aws_account_email"])
                audit_record(
                    action="partner.provisioning_requested",
                    obj=locked,
                    actor=actor,
                    partner_id=locked.pk,
                    data={"email": email, "aws_account_id": ""},
                )
    outcome: dict[str, str] = {}

    def _settled() -> bool:
        outcome["state"] = partner_account_ensure(partner_id=partner.pk)
        return outcome["state"] != Status.PENDING

    if not aws.wait_until(_settled, timeout=timeout, interval=min(5.0, settings.ACCOUNT_POLL_SECONDS)):
        raise aws.AwsUnavailable("Account creation is still in progress; it will be resumed.")
    failed = BaselineStep.objects.filter(
        partner=partner, name__in=ACCOUNT_STEPS, status=Status.FAILED
    ).first()
    if failed is not None:
        raise aws.AwsRejected("ProvisioningFailed", f"{failed.get_name_display()}: {failed.error}")
    return Partner.objects.get(pk=partner.pk)
