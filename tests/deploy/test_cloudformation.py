"""What Porte needs in a real AWS organization, as code (deploy/*.yaml): the templates pass cfn-lint, every IAM
document in them and every document Porte itself writes passes parliament, and the templates deploy to moto's
CloudFormation, after which Porte runs a grant's lifecycle through the roles they made (the broker role the
partner's roles trust, the admin role Porte assumes in the partner account).

moto evaluates no IAM permissions: the deployment test proves the wiring (names, ARNs, trust), not that each
permission is enough; parliament and the exact-document tests decide what the documents say. moto's CloudFormation
also skips the bucket and queue policies (it warns that it does not implement those two resource types): they are
checked here by cfn-lint and parliament only."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.api import lint_all
from cfnlint.decode import cfn_yaml
from parliament import analyze_policy_string

from approvals.services import request_create
from grants import policies
from grants.models import Grant
from grants.provisioning import role_provision
from grants.services import activation, expiry, minting, revocation
from partners import network
from partners import services as partner_services
from portal import aws
from tests.fixtures.domain import build_partner, make_member

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TEMPLATES = sorted(DEPLOY.glob("*.yaml"))
ACCOUNT, REGION, ORG = "123456789012", "eu-west-1", "o-exampleorg1"
PARAMETERS = {
    "management.yaml": {
        "PorteRunsAs": f"arn:aws:iam::{ACCOUNT}:role/porte-ecs-task",
        "OrganizationId": ORG,
        "TrailBucketName": "porte-org-trail-test",
    },
    "partner-account.yaml": {"PorteServiceRoleArn": f"arn:aws:iam::{ACCOUNT}:role/PorteService"},
}
# parliament findings that are advice on a document's style, not a fault in what it allows.
ADVISORY = {"RESOURCE_STAR", "CREDENTIALS_EXPOSURE"}


def test_there_are_templates_for_both_sides():
    assert {t.name for t in TEMPLATES} == set(PARAMETERS)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
def test_templates_pass_cfn_lint(template: Path):
    # Errors and warnings (cfn-lint's command line shows no more); its informational advice is not a fault.
    matches = [m for m in lint_all(template.read_text()) if m.rule.id[0] in "EW"]
    assert not matches, "\n".join(str(m) for m in matches)


def _resolve(value: Any, names: dict[str, str]) -> Any:
    """CloudFormation's intrinsics, enough to read the templates' policies as IAM will see them."""
    if isinstance(value, list):
        return [_resolve(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::Sub"}:
        return re.sub(r"\$\{([^}]+)\}", lambda m: names[m[1]], value["Fn::Sub"])
    if set(value) == {"Ref"}:
        return names[value["Ref"]]
    if set(value) == {"Fn::GetAtt"}:
        resource, attribute = (
            value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else value["Fn::GetAtt"].split(".")
        )
        return names[f"{resource}.{attribute}"]
    return {k: _resolve(v, names) for k, v in value.items()}


def _documents(template: Path) -> list[tuple[str, dict[str, Any], bool]]:
    """(where, document, is a resource policy) for every policy in the template."""
    body = cfn_yaml.loads(template.read_text())
    names = {
        "AWS::Partition": "aws",
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
        **PARAMETERS[template.name],
    }
    names.setdefault("PartnerAdminRoleName", "PorteAdmin")
    names.setdefault("TrailName", "porte-org-trail")
    names.setdefault("RoleName", "PorteAdmin")
    for logical, resource in body["Resources"].items():
        kind = resource["Type"]
        if kind == "AWS::IAM::Role":
            names[f"{logical}.Arn"] = f"arn:aws:iam::{ACCOUNT}:role/{logical}"
        elif kind == "AWS::S3::Bucket":
            names[logical] = names["TrailBucketName"]
            names[f"{logical}.Arn"] = f"arn:aws:s3:::{names['TrailBucketName']}"
        elif kind == "AWS::SQS::Queue":
            names[f"{logical}.Arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:porte-trail-notices"
    found = []
    for logical, resource in body["Resources"].items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []):
            found.append(
                (f"{logical}/{policy['PolicyName']}", _resolve(policy["PolicyDocument"], names), False)
            )
        if "PolicyDocument" in props:
            found.append((logical, _resolve(props["PolicyDocument"], names), True))
        if "AssumeRolePolicyDocument" in props:
            found.append((f"{logical}/trust", _resolve(props["AssumeRolePolicyDocument"], names), True))
    return found


def _porte_documents() -> list[tuple[str, dict[str, Any], bool]]:
    """The documents Porte writes into partner accounts, with realistic values."""
    ends = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    revoked = policies.revocation_policy([(f"porte-{'a' * 32}", ends)])
    assert revoked is not None
    return [
        (
            "trust",
            policies.trust_policy(
                broker_arn=f"arn:aws:iam::{ACCOUNT}:role/PorteBroker", external_id="x" * 32
            ),
            True,
        ),
        ("session", policies.session_policy(ends_at=ends, source_cidrs=["203.0.113.0/24"]), False),
        ("revocations", revoked, False),
        ("boundary", partner_services.boundary_policy_document(), False),
        ("flow-logs trust", network.flow_logs_role_trust(ACCOUNT, REGION), True),
        (
            "flow-logs",
            network.flow_logs_role_policy(
                f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{network.FLOW_LOG_GROUP}"
            ),
            False,
        ),
    ]


def _all_documents() -> list[tuple[str, dict[str, Any], bool]]:
    return [(f"{t.name}:{w}", d, r) for t in TEMPLATES for w, d, r in _documents(t)] + _porte_documents()


@pytest.mark.parametrize(
    "where,document,is_resource_policy", _all_documents(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_iam_document_passes_parliament(where: str, document: dict[str, Any], is_resource_policy: bool):
    findings = analyze_policy_string(
        json.dumps(document), ignore_private_auditors=True, include_community_auditors=False
    ).findings
    faults = [
        f for f in findings if f.issue not in ADVISORY and not (is_resource_policy and f.issue == "MALFORMED")
    ]
    assert not faults, f"{where}: " + "; ".join(f"{f.issue} {f.detail}" for f in faults)


def test_no_allow_with_a_wildcard_action():
    """Least privilege in what the templates grant: every allowed action is named. (Porte's session policy allows
    "*" on purpose: a session policy grants nothing, it only narrows the role's own permissions.)"""
    for where, document, _ in [(f"{t.name}:{w}", d, r) for t in TEMPLATES for w, d, r in _documents(t)]:
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            actions = statement.get("Action", [])
            for action in [actions] if isinstance(actions, str) else actions:
                assert "*" not in action, f"{where}: {action}"


def _stack(cloudformation: Any, name: str, template: Path, parameters: dict[str, str]) -> dict[str, str]:
    cloudformation.create_stack(
        StackName=name,
        TemplateBody=template.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _boto3(service: str, endpoint: str, credentials: aws.Credentials | None = None) -> Any:
    keys = (
        {
            "aws_access_key_id": credentials.access_key_id,
            "aws_secret_access_key": credentials.secret_access_key,
            "aws_session_token": credentials.session_token,
        }
        if credentials
        else {}
    )
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint, **keys)


@pytest.mark.django_db
def test_deployed_templates_carry_a_grant_lifecycle(local_aws, settings):
    management = _stack(
        _boto3("cloudformation", local_aws),
        "porte-management",
        DEPLOY / "management.yaml",
        {**PARAMETERS["management.yaml"], "OrganizationId": ORG},
    )
    assert management["BrokerRoleArn"].endswith(":role/PorteBroker")
    iam = _boto3("iam", local_aws)
    assert "porte-broker" in iam.list_role_policies(RoleName="PorteBroker")["PolicyNames"]
    queue_url = management["TrailNoticesUrl"]
    assert queue_url.endswith("/porte-trail-notices")

    # Porte as configured from the outputs: its broker is the stack's broker role.
    settings.AWS_BROKER_ROLE_ARN = management["BrokerRoleArn"]
    settings.ACTIVITY_TRAIL_BUCKET = management["TrailBucket"]
    aws.reset_caches()
    world = build_partner("acme")
    account = world.partner.aws_account_id
    # The partner-account stack, as an administrator of the new account deploys it (or a StackSet does).
    _stack(
        _boto3("cloudformation", local_aws, aws.partner_admin_credentials(account)),
        "porte-partner",
        DEPLOY / "partner-account.yaml",
        {"PorteServiceRoleArn": management["PorteServiceRoleArn"]},
    )
    settings.AWS_PARTNER_ADMIN_ROLE_NAME = "PorteAdmin"
    aws.reset_caches()
    partner_iam = aws.partner(account).iam
    assert partner_iam.get_role(RoleName="PorteAdmin")["Role"]["AssumeRolePolicyDocument"]["Statement"][0][
        "Principal"
    ] == {"AWS": management["PorteServiceRoleArn"]}

    # A role provisioned from now on trusts the stack's broker, and a person's grant runs its course.
    role_provision(role=world.role)
    trust = partner_iam.get_role(RoleName=world.role.iam_name)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"AWS": management["BrokerRoleArn"]}
    alice = make_member(world.partner, "alice")
    request = request_create(
        requester=alice, role=world.role, justification="Inventory audit", duration=timedelta(minutes=30)
    )
    grant = activation.grant_activate(grant_id=request.grant.pk)
    assert grant.status == Grant.Status.ACTIVE
    minted = minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli")
    identity = _boto3("sts", local_aws, minted.credentials).get_caller_identity()
    assert identity["Arn"].startswith(f"arn:aws:sts::{account}:assumed-role/{world.role.iam_name}/")
    revocation.grant_revoke(grant=grant, reason="done", actor=alice)
    expiry.role_finish_endings(role_id=world.role.pk)
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    denies = partner_iam.get_role_policy(
        RoleName=world.role.iam_name, PolicyName=policies.REVOCATIONS_POLICY_NAME
    )
    assert alice.source_identity in json.dumps(denies["PolicyDocument"])
