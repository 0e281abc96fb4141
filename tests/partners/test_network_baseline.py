"""The network baseline in a partner's account, against moto (server mode), as Porte's admin role in that account.

moto keeps what it is given but enforces none of it: no packet is filtered by the network ACL or security group,
no flow log record is ever written, and endpoints route nothing. These tests assert the resources and their
settings, never traffic. moto also accepts a flow log whose role or log group does not exist (AWS refuses it), and
it starts a new VPC's default security group with egress only (AWS also adds self-referencing ingress): the lock-down
revokes whatever is there, so both shapes end with no rules.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from partners import aws_account, network, services
from partners.models import BaselineStep, Partner
from portal import aws
from portal.models import AuditEvent
from tests.fixtures.domain import make_member, sign_in_as

pytestmark = pytest.mark.django_db

NETWORK_STEPS = [
    "vpc",
    "subnets",
    "default_security_group",
    "network_acl",
    "flow_logs",
    "vpc_endpoints",
]


@pytest.fixture
def partner(local_aws: str) -> Partner:
    services.organization_ensure()
    partner = services.partner_create(name="Initech Corp", slug="initech", domains=["initech.example"])
    return services.partner_account_provision(
        partner=partner, email="aws+initech@example.invalid", timeout=10
    )


def ec2(partner: Partner) -> Any:
    return aws.partner(partner.aws_account_id, region=partner.aws_region).ec2


def tagged(partner: Partner) -> list[dict[str, Any]]:
    return [{"Name": "tag:porte:partner", "Values": [partner.slug]}]


def step_map(partner: Partner) -> dict[str, BaselineStep]:
    return {s.name: s for s in BaselineStep.objects.filter(partner=partner, name__in=NETWORK_STEPS)}


def statuses(partner: Partner) -> dict[str, str]:
    return {name: step.status for name, step in step_map(partner).items()}


def test_baseline_builds_a_private_vpc_with_logs_and_endpoints(partner: Partner) -> None:
    outcome = network.partner_network_ensure(partner_id=partner.pk)

    assert outcome == dict.fromkeys(NETWORK_STEPS, "done")
    steps = step_map(partner)
    client = ec2(partner)
    vpcs = client.describe_vpcs(Filters=tagged(partner))["Vpcs"]
    assert [(v["VpcId"], v["CidrBlock"]) for v in vpcs] == [
        (steps["vpc"].resource_ids["vpc_id"], "10.64.0.0/16")
    ]
    vpc_id = vpcs[0]["VpcId"]
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc_id]}]
    for attribute, key in (
        ("enableDnsSupport", "EnableDnsSupport"),
        ("enableDnsHostnames", "EnableDnsHostnames"),
    ):
        assert client.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"] is True

    # Two private subnets in two availability zones; nothing gives them a way out.
    subnets = client.describe_subnets(Filters=vpc_filter)["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == ["eu-west-1a", "eu-west-1b"]
    assert sorted(s["CidrBlock"] for s in subnets) == ["10.64.0.0/20", "10.64.16.0/20"]
    assert sorted(s["SubnetId"] for s in subnets) == sorted(steps["subnets"].resource_ids["subnet_ids"])
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)
    assert (
        client.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])[
            "InternetGateways"
        ]
        == []
    )
    routes = [r for t in client.describe_route_tables(Filters=vpc_filter)["RouteTables"] for r in t["Routes"]]
    assert not [r for r in routes if r.get("GatewayId", "").startswith("igw-") or r.get("NatGatewayId")]

    default_sg = client.describe_security_groups(
        Filters=[*vpc_filter, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]
    assert (default_sg["IpPermissions"], default_sg["IpPermissionsEgress"]) == ([], [])
    assert steps["default_security_group"].resource_ids == {"security_group_id": default_sg["GroupId"]}

    # A dedicated ACL on both subnets: all traffic within the VPC, HTTPS to S3's ranges (for the gateway
    # endpoint) and the replies, and AWS's own final deny.
    acl_id = steps["network_acl"].resource_ids["network_acl_id"]
    acl = client.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]
    assert sorted(a["SubnetId"] for a in acl["Associations"]) == sorted(s["SubnetId"] for s in subnets)
    s3_list = client.describe_managed_prefix_lists(
        Filters=[{"Name": "prefix-list-name", "Values": ["com.amazonaws.eu-west-1.s3"]}]
    )["PrefixLists"][0]
    s3_ranges = sorted(
        e["Cidr"]
        for e in client.get_managed_prefix_list_entries(PrefixListId=s3_list["PrefixListId"])["Entries"]
    )
    assert s3_ranges  # moto ships S3's prefix list with a few ranges
    expected = {
        (100, False, "-1", "allow", "10.64.0.0/16", None),
        (100, True, "-1", "allow", "10.64.0.0/16", None),
    }
    for offset, cidr in enumerate(s3_ranges):
        expected.add((200 + offset, True, "6", "allow", cidr, (443, 443)))
        expected.add((200 + offset, False, "6", "allow", cidr, (1024, 65535)))
    entries = {
        (
            e["RuleNumber"],
            e["Egress"],
            e["Protocol"],
            e["RuleAction"],
            e["CidrBlock"],
            (e["PortRange"]["From"], e["PortRange"]["To"]) if e.get("PortRange") else None,
        )
        for e in acl["Entries"]
        if e["RuleNumber"] < 32767
    }
    assert entries == expected

    flow_logs = client.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc_id]}])["FlowLogs"]
    assert [
        (f["FlowLogId"], f["TrafficType"], f["LogDestinationType"], f["LogGroupName"]) for f in flow_logs
    ] == [(steps["flow_logs"].resource_ids["flow_log_id"], "ALL", "cloud-watch-logs", "/porte/vpc-flow-logs")]
    role_arn = f"arn:aws:iam::{partner.aws_account_id}:role/porte-vpc-flow-logs"
    assert flow_logs[0]["DeliverLogsPermissionArn"] == role_arn
    iam = aws.partner(partner.aws_account_id).iam
    trust = iam.get_role(RoleName="porte-vpc-flow-logs")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Statement"][0]["Condition"]["StringEquals"] == {"aws:SourceAccount": partner.aws_account_id}
    logs = aws.partner(partner.aws_account_id, region="eu-west-1").logs
    group = logs.describe_log_groups(logGroupNamePrefix="/porte/vpc-flow-logs")["logGroups"][0]
    assert group["retentionInDays"] == 365

    endpoints = client.describe_vpc_endpoints(Filters=vpc_filter)["VpcEndpoints"]
    kinds = {e["ServiceName"]: e["VpcEndpointType"] for e in endpoints}
    assert kinds == {
        "com.amazonaws.eu-west-1.s3": "Gateway",
        "com.amazonaws.eu-west-1.sts": "Interface",
        "com.amazonaws.eu-west-1.ssm": "Interface",
        "com.amazonaws.eu-west-1.logs": "Interface",
    }
    endpoint_sg = steps["vpc_endpoints"].resource_ids["security_group_id"]
    for endpoint in endpoints:
        if endpoint["VpcEndpointType"] == "Interface":
            assert sorted(endpoint["SubnetIds"]) == sorted(s["SubnetId"] for s in subnets)
            assert [g["GroupId"] for g in endpoint["Groups"]] == [endpoint_sg]
            assert endpoint["PrivateDnsEnabled"] is True
    group = client.describe_security_groups(GroupIds=[endpoint_sg])["SecurityGroups"][0]
    assert [
        (p["IpProtocol"], p["FromPort"], p["ToPort"], [r["CidrIp"] for r in p["IpRanges"]])
        for p in group["IpPermissions"]
    ] == [("tcp", 443, 443, ["10.64.0.0/16"])]
    assert group["IpPermissionsEgress"] == []


def inventory(partner: Partner) -> dict[str, Any]:
    """Every baseline resource in the account, by kind (what a second run must leave as it is)."""
    client = ec2(partner)
    vpc_ids = sorted(v["VpcId"] for v in client.describe_vpcs(Filters=tagged(partner))["Vpcs"])
    in_vpc = [{"Name": "vpc-id", "Values": vpc_ids}]
    return {
        "vpcs": vpc_ids,
        "subnets": sorted(s["SubnetId"] for s in client.describe_subnets(Filters=in_vpc)["Subnets"]),
        "acls": sorted(
            a["NetworkAclId"] for a in client.describe_network_acls(Filters=in_vpc)["NetworkAcls"]
        ),
        "security_groups": sorted(
            g["GroupId"] for g in client.describe_security_groups(Filters=in_vpc)["SecurityGroups"]
        ),
        "flow_logs": sorted(f["FlowLogId"] for f in client.describe_flow_logs()["FlowLogs"]),
        "endpoints": sorted(
            e["VpcEndpointId"] for e in client.describe_vpc_endpoints(Filters=in_vpc)["VpcEndpoints"]
        ),
        "internet_gateways": client.describe_internet_gateways()["InternetGateways"],
    }


def test_running_the_baseline_twice_changes_nothing(partner: Partner) -> None:
    network.partner_network_ensure(partner_id=partner.pk)
    first = inventory(partner)
    resources = {name: step.resource_ids for name, step in step_map(partner).items()}
    audit_events = AuditEvent.objects.count()

    assert network.partner_network_ensure(partner_id=partner.pk) == dict.fromkeys(NETWORK_STEPS, "done")

    assert inventory(partner) == first
    assert (len(first["vpcs"]), len(first["subnets"]), len(first["flow_logs"]), len(first["endpoints"])) == (
        1,
        2,
        1,
        4,
    )
    # default ACL + Porte's; default SG + the endpoints' group
    assert (len(first["acls"]), len(first["security_groups"])) == (2, 2)
    assert {name: step.resource_ids for name, step in step_map(partner).items()} == resources
    assert AuditEvent.objects.count() == audit_events  # an unchanged baseline adds nothing to the audit log


def test_baseline_repairs_drift_in_place(partner: Partner) -> None:
    """Someone opened the default security group and added an ACL rule: the next run puts them back, with the
    same resources."""
    network.partner_network_ensure(partner_id=partner.pk)
    steps = step_map(partner)
    client = ec2(partner)
    sg_id = steps["default_security_group"].resource_ids["security_group_id"]
    client.authorize_security_group_ingress(
        GroupId=sg_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ],
    )
    acl_id = steps["network_acl"].resource_ids["network_acl_id"]
    client.create_network_acl_entry(
        NetworkAclId=acl_id,
        RuleNumber=90,
        Protocol="-1",
        RuleAction="allow",
        Egress=False,
        CidrBlock="0.0.0.0/0",
    )
    before = inventory(partner)

    network.partner_network_ensure(partner_id=partner.pk)

    assert client.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]["IpPermissions"] == []
    rules = client.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]["Entries"]
    assert 90 not in {e["RuleNumber"] for e in rules}
    assert inventory(partner) == before


def test_an_endpoint_aws_refuses_fails_that_step_only(partner: Partner, settings: Any) -> None:
    settings.PARTNER_VPC_ENDPOINT_SERVICES = ["s3", "sts", "nosuchservice"]

    outcome = network.partner_network_ensure(partner_id=partner.pk)

    assert outcome == {**dict.fromkeys(NETWORK_STEPS, "done"), "vpc_endpoints": "failed"}
    step = step_map(partner)["vpc_endpoints"]
    # moto answers DescribeVpcEndpointServices for an unknown name as AWS does: InvalidServiceName.
    assert "com.amazonaws.eu-west-1.nosuchservice (InvalidServiceName:" in step.error
    assert "PORTE_PARTNER_VPC_ENDPOINTS" in step.error
    assert set(step.resource_ids) == {"s3", "sts", "security_group_id"}  # the others were made all the same
    assert AuditEvent.objects.filter(action="partner.baseline_failed", partner_id=partner.pk).count() == 1

    settings.PARTNER_VPC_ENDPOINT_SERVICES = ["s3", "sts"]
    assert network.partner_network_ensure(partner_id=partner.pk) == dict.fromkeys(NETWORK_STEPS, "done")
    assert step_map(partner)["vpc_endpoints"].error == ""


def test_a_vpc_range_aws_refuses_fails_the_vpc_and_holds_what_needs_it(
    partner: Partner, settings: Any
) -> None:
    settings.PARTNER_VPC_CIDR = "10.0.0.0/8"  # a valid network, but AWS takes /16 to /28

    outcome = network.partner_network_ensure(partner_id=partner.pk)

    assert outcome == {**dict.fromkeys(NETWORK_STEPS, "pending"), "vpc": "failed"}
    steps = step_map(partner)
    assert steps["vpc"].error.startswith("InvalidVpc.Range:")
    assert {steps[n].error for n in ("subnets", "default_security_group", "flow_logs")} == {
        "Waiting for: VPC without internet gateway."
    }
    assert ec2(partner).describe_vpcs(Filters=tagged(partner))["Vpcs"] == []
    # The account's own steps are untouched.
    account_steps = BaselineStep.objects.filter(partner=partner, name__in=aws_account.ACCOUNT_STEPS)
    assert {s.status for s in account_steps} == {"done"}

    settings.PARTNER_VPC_CIDR = "10.64.0.0/16"
    assert network.partner_network_ensure(partner_id=partner.pk) == dict.fromkeys(NETWORK_STEPS, "done")


def test_an_internet_gateway_someone_attached_fails_the_vpc_step(partner: Partner) -> None:
    network.partner_network_ensure(partner_id=partner.pk)
    client = ec2(partner)
    vpc_id = step_map(partner)["vpc"].resource_ids["vpc_id"]
    igw = client.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    client.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)

    outcome = network.partner_network_ensure(partner_id=partner.pk)

    assert outcome["vpc"] == "failed"
    assert step_map(partner)["vpc"].error.startswith(f"Internet gateway {igw} is attached to {vpc_id}")
    # Porte reports it; it does not delete what it did not make.
    assert client.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"][0]["Attachments"]


# --- the staff page --------------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(staff: Any) -> Client:
    client = Client()
    sign_in_as(client, staff)
    return client


def test_staff_page_shows_each_step_and_its_error(
    partner: Partner, staff_client: Client, settings: Any
) -> None:
    settings.PARTNER_VPC_ENDPOINT_SERVICES = ["s3", "nosuchservice"]
    network.partner_network_ensure(partner_id=partner.pk)

    page = staff_client.get(f"/staff/partners/{partner.slug}/").content.decode()

    for label in (
        "Dedicated AWS account",
        "In the Partners organizational unit",
        "Guardrail service control policies",
        "VPC without internet gateway",
        "Private subnets in two availability zones",
        "Default security group without rules",
        "Network ACL (intra-VPC only)",
        "VPC flow logs",
        "VPC endpoints",
    ):
        assert label in page
    steps = step_map(partner)
    assert steps["vpc"].resource_ids["vpc_id"] in page
    assert partner.aws_account_id in page
    assert "com.amazonaws.eu-west-1.nosuchservice (InvalidServiceName:" in page
    assert page.count('class="status status-active">Done') == 8
    assert page.count('class="status status-failed">Failed') == 1
    assert "Provision AWS account and network" in page


def test_staff_page_before_anything_ran(local_aws: str, staff_client: Client) -> None:
    partner = services.partner_create(name="Initech Corp", slug="initech", domains=["initech.example"])
    page = staff_client.get(f"/staff/partners/{partner.slug}/").content.decode()
    assert page.count("not started") == 9
    assert 'value="aws+initech@partners.porte.invalid"' in page  # the default root email, editable


def test_staff_post_queues_the_task_on_commit(
    local_aws: str, staff_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    partner = services.partner_create(name="Initech Corp", slug="initech", domains=["initech.example"])
    with django_capture_on_commit_callbacks() as queued:
        response = staff_client.post(
            f"/staff/partners/{partner.slug}/provision/", {"email": "root@initech.example"}
        )
    assert response.status_code == 302
    assert len(queued) == 1
    partner.refresh_from_db()
    assert partner.aws_account_email == "root@initech.example"
    assert set(BaselineStep.objects.filter(partner=partner).values_list("status", flat=True)) == {"pending"}
    assert (
        AuditEvent.objects.filter(action="partner.provisioning_requested", partner_id=partner.pk).count() == 1
    )


def test_partner_users_get_404_from_the_staff_provision_post(
    acme: Any, local_aws: str, django_capture_on_commit_callbacks: Any
) -> None:
    partner_admin = make_member(acme.partner, "pat", partner_admin=True)
    client = Client()
    sign_in_as(client, partner_admin)
    steps_before, audit_before = BaselineStep.objects.count(), AuditEvent.objects.count()

    with django_capture_on_commit_callbacks() as queued:
        for slug in ("acme", "nosuchpartner"):
            assert (
                client.post(f"/staff/partners/{slug}/provision/", {"account_id": "111111111111"}).status_code
                == 404
            )
        assert client.get(f"/staff/partners/{acme.partner.slug}/").status_code == 404
        anonymous = Client().post(f"/staff/partners/{acme.partner.slug}/provision/")
    assert anonymous.status_code == 302 and "/provision/" in anonymous.headers["Location"]
    assert queued == []
    assert BaselineStep.objects.count() == steps_before
    assert AuditEvent.objects.count() == audit_before
