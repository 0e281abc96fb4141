"""The network baseline inside a partner's account: a private-only VPC that can reach AWS services, and nothing else.

Every resource carries the tag `porte:partner=<slug>` and is looked up by it (or by what AWS made for us, like the
default security group) before anything is created, so a second run finds everything and changes nothing.
Steps that do not depend on each other still run when one fails, and each one's outcome is recorded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from django.conf import settings

from partners.models import Partner
from partners.steps import Status, Step, StepFailed, step_run, step_wait
from portal import aws

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import ResourceTypeType
    from mypy_boto3_ec2.type_defs import FilterTypeDef, IpPermissionTypeDef, TagSpecificationTypeDef

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TAG_KEY = "porte:partner"
FLOW_LOG_GROUP = "/porte/vpc-flow-logs"
FLOW_LOG_ROLE = "porte-vpc-flow-logs"
FLOW_LOG_RETENTION_DAYS = 365
ENDPOINTS_GROUP_NAME = "porte-vpc-endpoints"
# Rule numbers of the dedicated network ACL: everything within the VPC, then S3's ranges for the gateway endpoint.
_INTRA_VPC_RULE = 100
_S3_RULES_FROM = 200


@dataclass
class _Run:
    partner: Partner
    region: str
    found: dict[str, dict[str, Any]] = field(default_factory=dict)

    @cached_property
    def ec2(self) -> EC2Client:
        # Made on first use, inside a step: failing to assume the admin role then fails that step, visibly.
        return aws.partner(self.partner.aws_account_id, region=self.region).ec2

    def tags(self, resource_type: ResourceTypeType, name: str) -> list[TagSpecificationTypeDef]:
        return [
            {
                "ResourceType": resource_type,
                "Tags": [{"Key": TAG_KEY, "Value": self.partner.slug}, {"Key": "Name", "Value": name}],
            }
        ]

    def mine(self, *extra: FilterTypeDef) -> list[FilterTypeDef]:
        return [{"Name": f"tag:{TAG_KEY}", "Values": [self.partner.slug]}, *extra]

    @property
    def vpc_id(self) -> str:
        return str(self.found[Step.VPC]["vpc_id"])

    @property
    def vpc_cidr(self) -> str:
        return str(self.found[Step.VPC]["cidr_block"])

    @property
    def subnet_ids(self) -> list[str]:
        return list(self.found[Step.SUBNETS]["subnet_ids"])


def _vpc_filter(run: _Run) -> FilterTypeDef:
    return {"Name": "vpc-id", "Values": [run.vpc_id]}


# --- the steps -----------------------------------------------------------------------------------------------


def _vpc(run: _Run) -> dict[str, Any]:
    ec2 = run.ec2
    vpcs = sorted(ec2.describe_vpcs(Filters=run.mine())["Vpcs"], key=lambda v: v["VpcId"])
    if vpcs:
        vpc = vpcs[0]
    else:
        vpc = ec2.create_vpc(
            CidrBlock=settings.PARTNER_VPC_CIDR,
            TagSpecifications=run.tags("vpc", f"porte-{run.partner.slug}"),
        )["Vpc"]
        ec2.get_waiter("vpc_available").wait(
            VpcIds=[vpc["VpcId"]], WaiterConfig={"Delay": 2, "MaxAttempts": 30}
        )
    vpc_id = vpc["VpcId"]
    # Both are needed for the interface endpoints' private DNS names to answer inside the VPC.
    if not ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"][
        "Value"
    ]:
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
    if not ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"][
        "Value"
    ]:
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    gateways = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
    resources = {"vpc_id": vpc_id, "cidr_block": vpc["CidrBlock"]}
    attached = [g["InternetGatewayId"] for g in gateways["InternetGateways"]]
    if attached:
        # Not Porte's to delete: someone with access to the account attached it. Staff decide.
        raise StepFailed(
            f"Internet gateway {', '.join(attached)} is attached to {vpc_id}; the baseline allows none. "
            "Detach it in the partner's account, then provision again.",
            resources,
        )
    return resources


def _subnets(run: _Run) -> dict[str, Any]:
    ec2 = run.ec2
    zones = sorted(
        z["ZoneName"]
        for z in ec2.describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "zone-type", "Values": ["availability-zone"]},
            ]
        )["AvailabilityZones"]
    )
    in_vpc = ec2.describe_subnets(Filters=[_vpc_filter(run)])["Subnets"]
    ours = {s["AvailabilityZone"]: s for s in sorted(in_vpc, key=lambda s: s["SubnetId"]) if _is_mine(run, s)}
    if len(set(zones) | set(ours)) < 2:
        raise StepFailed(f"{run.region} has fewer than two availability zones available.")
    wanted = sorted(ours)[:2]
    wanted += [z for z in zones if z not in ours][: 2 - len(wanted)]
    taken: list[IPNetwork] = [ipaddress.ip_network(s["CidrBlock"]) for s in in_vpc]
    free = _free_blocks(run.vpc_cidr, taken)
    for zone in wanted:
        if zone not in ours:
            block = next(free, None)
            if block is None:
                raise StepFailed(
                    f"No free /{_block_prefix(run.vpc_cidr)} left in {run.vpc_cidr} for a subnet."
                )
            cidr = str(block)
            ours[zone] = ec2.create_subnet(
                VpcId=run.vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=zone,
                TagSpecifications=run.tags("subnet", f"porte-{run.partner.slug}-private-{zone}"),
            )["Subnet"]
    return {
        "subnet_ids": [ours[z]["SubnetId"] for z in wanted],
        "availability_zones": wanted,
        "cidr_blocks": [ours[z]["CidrBlock"] for z in wanted],
    }


def _free_blocks(vpc_cidr: str, taken: list[IPNetwork]) -> Iterator[IPNetwork]:
    """Sixteenths of the VPC range (a /20 of a /16), skipping any that overlaps an existing subnet."""
    blocks: Iterator[IPNetwork] = ipaddress.ip_network(vpc_cidr).subnets(new_prefix=_block_prefix(vpc_cidr))
    return (b for b in itertools.islice(blocks, 64) if not any(b.overlaps(t) for t in taken))


def _block_prefix(vpc_cidr: str) -> int:
    return min(ipaddress.ip_network(vpc_cidr).prefixlen + 4, 28)


def _default_security_group(run: _Run) -> dict[str, Any]:
    """The default group is what an instance gets when nobody chose one: with no rules, it lets nothing in or out."""
    ec2 = run.ec2
    group = ec2.describe_security_groups(
        Filters=[_vpc_filter(run), {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]
    group_id = group["GroupId"]
    if group["IpPermissions"]:
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=group["IpPermissions"])
    if group["IpPermissionsEgress"]:
        ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=group["IpPermissionsEgress"])
    if not _is_mine(run, group):
        ec2.create_tags(Resources=[group_id], Tags=[{"Key": TAG_KEY, "Value": run.partner.slug}])
    return {"security_group_id": group_id}


def _network_acl_entries(run: _Run) -> list[dict[str, Any]]:
    """Everything to and from the VPC's own range. With an S3 gateway endpoint, traffic to S3 leaves the subnet
    for S3's public ranges, which a network ACL must admit by CIDR (ACLs know no prefix lists): HTTPS out to
    them, and the replies back in on ephemeral ports."""
    entries = [
        _entry(_INTRA_VPC_RULE, egress=False, cidr=run.vpc_cidr),
        _entry(_INTRA_VPC_RULE, egress=True, cidr=run.vpc_cidr),
    ]
    if "s3" in settings.PARTNER_VPC_ENDPOINT_SERVICES:
        for offset, cidr in enumerate(_s3_ranges(run)):
            entries.append(_entry(_S3_RULES_FROM + offset, egress=True, cidr=cidr, ports=(443, 443)))
            entries.append(_entry(_S3_RULES_FROM + offset, egress=False, cidr=cidr, ports=(1024, 65535)))
    return entries


def _entry(rule: int, *, egress: bool, cidr: str, ports: tuple[int, int] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "RuleNumber": rule,
        "Egress": egress,
        "Protocol": "6" if ports else "-1",
        "RuleAction": "allow",
        "CidrBlock": cidr,
    }
    if ports:
        entry["PortRange"] = {"From": ports[0], "To": ports[1]}
    return entry


def _s3_ranges(run: _Run) -> list[str]:
    name = f"com.amazonaws.{run.region}.s3"
    lists = run.ec2.describe_managed_prefix_lists(Filters=[{"Name": "prefix-list-name", "Values": [name]}])
    if not lists["PrefixLists"]:
        return []
    entries = run.ec2.get_managed_prefix_list_entries(PrefixListId=lists["PrefixLists"][0]["PrefixListId"])
    return sorted(e["Cidr"] for e in entries["Entries"])


def _comparable(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    ports = entry.get("PortRange") or {}
    return (
        entry["RuleNumber"],
        bool(entry["Egress"]),
        str(entry["Protocol"]),
        entry["RuleAction"],
        entry.get("CidrBlock"),
        ports.get("From"),
        ports.get("To"),
    )


def _network_acl(run: _Run) -> dict[str, Any]:
    ec2 = run.ec2
    acls = sorted(
        ec2.describe_network_acls(Filters=run.mine(_vpc_filter(run)))["NetworkAcls"],
        key=lambda a: a["NetworkAclId"],
    )
    acl = (
        acls[0]
        if acls
        else ec2.create_network_acl(
            VpcId=run.vpc_id,
            TagSpecifications=run.tags("network-acl", f"porte-{run.partner.slug}-private"),
        )["NetworkAcl"]
    )
    acl_id = acl["NetworkAclId"]
    wanted = {(e["RuleNumber"], e["Egress"]): e for e in _network_acl_entries(run)}
    # 32767 is AWS's own catch-all deny, present on every ACL and not editable.
    present = {(e["RuleNumber"], e["Egress"]): e for e in acl.get("Entries", []) if e["RuleNumber"] < 32767}
    for key, entry in wanted.items():
        if key not in present:
            ec2.create_network_acl_entry(NetworkAclId=acl_id, **entry)
        elif _comparable(present[key]) != _comparable(entry):
            ec2.replace_network_acl_entry(NetworkAclId=acl_id, **entry)
    for rule, egress in present.keys() - wanted.keys():
        ec2.delete_network_acl_entry(NetworkAclId=acl_id, RuleNumber=rule, Egress=egress)
    for subnet_id in run.subnet_ids:
        current = ec2.describe_network_acls(
            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}]
        )
        association = next(a for a in current["NetworkAcls"][0]["Associations"] if a["SubnetId"] == subnet_id)
        if association["NetworkAclId"] != acl_id:
            ec2.replace_network_acl_association(
                AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl_id
            )
    return {"network_acl_id": acl_id, "subnet_ids": run.subnet_ids, "entries": len(wanted)}


def flow_logs_role_trust(account_id: str, region: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                "Action": "sts:AssumeRole",
                # Only flow logs of this account may use the role (confused-deputy protection).
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account_id},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:{region}:{account_id}:vpc-flow-log/*"},
                },
            }
        ],
    }


def flow_logs_role_policy(log_group_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                "Resource": [log_group_arn, f"{log_group_arn}:*"],
            },
            # IAM authorizes DescribeLogGroups on "*" only (it lists, it reads no log).
            {"Effect": "Allow", "Action": "logs:DescribeLogGroups", "Resource": "*"},
        ],
    }


def _flow_logs(run: _Run) -> dict[str, Any]:
    account_id = run.partner.aws_account_id
    logs = aws.partner(account_id, region=run.region).logs
    iam = aws.partner(account_id).iam
    log_group_arn = f"arn:aws:logs:{run.region}:{account_id}:log-group:{FLOW_LOG_GROUP}"
    groups = logs.describe_log_groups(logGroupNamePrefix=FLOW_LOG_GROUP)["logGroups"]
    group = next((g for g in groups if g["logGroupName"] == FLOW_LOG_GROUP), None)
    if group is None:
        with contextlib.suppress(aws.AwsAlreadyExists):
            logs.create_log_group(logGroupName=FLOW_LOG_GROUP, tags={TAG_KEY: run.partner.slug})
    if (group or {}).get("retentionInDays") != FLOW_LOG_RETENTION_DAYS:
        logs.put_retention_policy(logGroupName=FLOW_LOG_GROUP, retentionInDays=FLOW_LOG_RETENTION_DAYS)
    try:
        role_arn = iam.get_role(RoleName=FLOW_LOG_ROLE)["Role"]["Arn"]
    except aws.AwsNotFound:
        role_arn = iam.create_role(
            RoleName=FLOW_LOG_ROLE,
            AssumeRolePolicyDocument=json.dumps(flow_logs_role_trust(account_id, run.region)),
            Description="Porte: lets VPC flow logs write to CloudWatch Logs",
            Tags=[{"Key": TAG_KEY, "Value": run.partner.slug}],
        )["Role"]["Arn"]
    # Putting the same inline policy again changes nothing; it repairs an edited one.
    iam.put_role_policy(
        RoleName=FLOW_LOG_ROLE,
        PolicyName="write-flow-logs",
        PolicyDocument=json.dumps(flow_logs_role_policy(log_group_arn)),
    )
    existing = [
        f
        for f in run.ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [run.vpc_id]}])[
            "FlowLogs"
        ]
        if f.get("LogGroupName") == FLOW_LOG_GROUP and f.get("TrafficType") == "ALL"
    ]
    if existing:
        flow_log_id = sorted(f["FlowLogId"] for f in existing)[0]
    else:
        created = run.ec2.create_flow_logs(
            ResourceIds=[run.vpc_id],
            ResourceType="VPC",
            TrafficType="ALL",
            LogDestinationType="cloud-watch-logs",
            LogGroupName=FLOW_LOG_GROUP,
            DeliverLogsPermissionArn=role_arn,
            TagSpecifications=run.tags("vpc-flow-log", f"porte-{run.partner.slug}"),
        )
        if created.get("Unsuccessful"):
            error = created["Unsuccessful"][0].get("Error", {})
            raise aws.AwsRejected(str(error.get("Code", "FlowLogFailed")), str(error.get("Message", "")))
        flow_log_id = created["FlowLogIds"][0]
    return {"flow_log_id": flow_log_id, "log_group": FLOW_LOG_GROUP, "role_arn": role_arn}


def _endpoints_security_group(run: _Run) -> str:
    """Interface endpoints answer HTTPS from inside the VPC and start nothing themselves."""
    ec2 = run.ec2
    found = ec2.describe_security_groups(
        Filters=run.mine(_vpc_filter(run), {"Name": "group-name", "Values": [ENDPOINTS_GROUP_NAME]})
    )["SecurityGroups"]
    if found:
        group = found[0]
    else:
        group_id = ec2.create_security_group(
            GroupName=ENDPOINTS_GROUP_NAME,
            Description="Porte: HTTPS from the VPC to its interface endpoints",
            VpcId=run.vpc_id,
            TagSpecifications=run.tags("security-group", f"porte-{run.partner.slug}-endpoints"),
        )["GroupId"]
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    https_in: IpPermissionTypeDef = {
        "IpProtocol": "tcp",
        "FromPort": 443,
        "ToPort": 443,
        "IpRanges": [{"CidrIp": run.vpc_cidr}],
    }
    has_https_in = any(
        p.get("IpProtocol") == "tcp"
        and p.get("FromPort") == 443
        and any(r.get("CidrIp") == run.vpc_cidr for r in p.get("IpRanges", []))
        for p in group["IpPermissions"]
    )
    if not has_https_in:
        ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[https_in])
    if group["IpPermissionsEgress"]:
        ec2.revoke_security_group_egress(GroupId=group["GroupId"], IpPermissions=group["IpPermissionsEgress"])
    return str(group["GroupId"])


def _endpoints_group_into(run: _Run, resources: dict[str, Any]) -> None:
    if "security_group_id" not in resources:
        resources["security_group_id"] = _endpoints_security_group(run)


def _endpoint_type(ec2: EC2Client, service: str) -> str:
    """ "Gateway" where AWS offers a (free) gateway endpoint for the service, else "Interface" (PrivateLink).
    Raises AwsRejected(InvalidServiceName) for a service the region does not offer."""
    details = ec2.describe_vpc_endpoint_services(ServiceNames=[service])["ServiceDetails"]
    offered = {t["ServiceType"] for d in details for t in d.get("ServiceType", [])}
    return "Gateway" if "Gateway" in offered else "Interface"


def _vpc_endpoints(run: _Run) -> dict[str, Any]:
    ec2 = run.ec2
    resources: dict[str, Any] = {}
    refused: list[str] = []
    present = {
        e["ServiceName"]: e
        for e in ec2.describe_vpc_endpoints(Filters=[_vpc_filter(run)])["VpcEndpoints"]
        if e.get("State", "").lower() not in ("deleting", "deleted", "failed", "rejected")
    }
    route_tables = sorted(
        t["RouteTableId"] for t in ec2.describe_route_tables(Filters=[_vpc_filter(run)])["RouteTables"]
    )
    for short in settings.PARTNER_VPC_ENDPOINT_SERVICES:
        service = f"com.amazonaws.{run.region}.{short}"
        if service in present:
            resources[short] = present[service]["VpcEndpointId"]
            if present[service]["VpcEndpointType"] == "Interface":
                _endpoints_group_into(run, resources)
            continue
        try:
            kind = _endpoint_type(ec2, service)
        except aws.AwsRejected as exc:
            # One unknown name must not keep the others from being made.
            refused.append(f"{service} ({exc})")
            continue
        tags = run.tags("vpc-endpoint", f"porte-{run.partner.slug}-{short}")
        if kind == "Gateway":
            created = ec2.create_vpc_endpoint(
                VpcEndpointType="Gateway",
                VpcId=run.vpc_id,
                ServiceName=service,
                TagSpecifications=tags,
                RouteTableIds=route_tables,
            )
        else:
            _endpoints_group_into(run, resources)
            created = ec2.create_vpc_endpoint(
                VpcEndpointType="Interface",
                VpcId=run.vpc_id,
                ServiceName=service,
                TagSpecifications=tags,
                SubnetIds=run.subnet_ids,
                SecurityGroupIds=[resources["security_group_id"]],
                PrivateDnsEnabled=True,
            )
        resources[short] = created["VpcEndpoint"]["VpcEndpointId"]
    if refused:
        raise StepFailed(
            f"AWS refused a VPC endpoint for {'; '.join(refused)}. "
            "Correct PORTE_PARTNER_VPC_ENDPOINTS, then provision again.",
            resources,
        )
    return resources


def _is_mine(run: _Run, resource: Mapping[str, Any]) -> bool:
    return any(t["Key"] == TAG_KEY and t["Value"] == run.partner.slug for t in resource.get("Tags", []))


# Each step with the steps it needs done first.
_STEPS: list[tuple[str, Callable[[_Run], dict[str, Any]], list[str]]] = [
    (Step.VPC, _vpc, []),
    (Step.SUBNETS, _subnets, [Step.VPC]),
    (Step.DEFAULT_SECURITY_GROUP, _default_security_group, [Step.VPC]),
    (Step.NETWORK_ACL, _network_acl, [Step.VPC, Step.SUBNETS]),
    (Step.FLOW_LOGS, _flow_logs, [Step.VPC]),
    (Step.VPC_ENDPOINTS, _vpc_endpoints, [Step.VPC, Step.SUBNETS]),
]
NETWORK_STEPS = [name for name, _, _ in _STEPS]


def partner_network_ensure(*, partner_id: int) -> dict[str, str]:
    """Bring the partner account's network to the baseline; returns each step's status. Idempotent."""
    partner = Partner.objects.get(pk=partner_id)
    if not partner.aws_account_id:
        return {name: step_wait(partner, name, [Step.ACCOUNT]) for name in NETWORK_STEPS}
    run = _Run(partner=partner, region=partner.aws_region)
    outcome: dict[str, str] = {}
    for name, work, needs in _STEPS:
        blocked = [n for n in needs if outcome.get(n) != Status.DONE]
        if blocked:
            outcome[name] = step_wait(partner, name, blocked)
            continue
        outcome[name] = step_run(partner, name, partial(_remember, run, name, work))
    return outcome


def _remember(run: _Run, name: str, work: Callable[[_Run], dict[str, Any]]) -> dict[str, Any]:
    resources = work(run)
    run.found[name] = resources
    return resources
