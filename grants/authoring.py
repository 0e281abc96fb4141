"""Authoring scoped roles: templates to start from, and the checks every inline policy passes before Porte puts
it in a partner account (structure, least-privilege guardrails, parliament's lint)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parliament import analyze_policy_string
from parliament import config as parliament_config

from grants import policies
from partners.models import Partner

# Leaves room in IAM's 10,240-character inline budget for the role's revocation denies.
MAX_POLICY_CHARS = 6_144
_BLOCKING_PARLIAMENT = {
    "MALFORMED",
    "UNKNOWN_ACTION",
    "UNKNOWN_PREFIX",
    "UNKNOWN_CONDITION_FOR_ACTION",
    "MISMATCHED_TYPE",
    "UNKNOWN_OPERATOR",
    "INVALID_ARN",
    "RESOURCE_MISMATCH",
}


class PolicyError(ValueError):
    """The policy cannot be used; the message says what to change."""


@dataclass(frozen=True)
class Finding:
    severity: str
    issue: str
    detail: str


def _tagged(partner: Partner) -> dict[str, Any]:
    return {"StringEquals": {"aws:ResourceTag/porte:partner": partner.slug}}


def templates(partner: Partner) -> dict[str, dict[str, Any]]:
    """Starting points, each already scoped to the partner's account, region and tagged resources."""
    region = {"StringEquals": {"aws:RequestedRegion": partner.aws_region}}
    account = partner.aws_account_id or "ACCOUNT_ID"
    return {
        "read-only": {
            "name": "Read-only inventory",
            "policy": {
                "Version": policies.VERSION,
                "Statement": [
                    {
                        "Sid": "ReadInventory",
                        "Effect": "Allow",
                        "Action": [
                            "ec2:Describe*",
                            "s3:ListAllMyBuckets",
                            "s3:GetBucketLocation",
                            "cloudwatch:GetMetricData",
                            "cloudwatch:ListMetrics",
                            "logs:DescribeLogGroups",
                        ],
                        "Resource": "*",
                        "Condition": region,
                    }
                ],
            },
        },
        "vpc-operator": {
            "name": "VPC operator",
            "policy": {
                "Version": policies.VERSION,
                "Statement": [
                    {
                        "Sid": "Describe",
                        "Effect": "Allow",
                        "Action": ["ec2:Describe*"],
                        "Resource": "*",
                        "Condition": region,
                    },
                    {
                        "Sid": "OperateTaggedInstances",
                        "Effect": "Allow",
                        "Action": ["ec2:StartInstances", "ec2:StopInstances", "ec2:RebootInstances"],
                        "Resource": f"arn:aws:ec2:{partner.aws_region}:{account}:instance/*",
                        "Condition": _tagged(partner),
                    },
                ],
            },
        },
        "s3-data-drop": {
            "name": "S3 data drop",
            "policy": {
                "Version": policies.VERSION,
                "Statement": [
                    {
                        "Sid": "DropInPartnerBucket",
                        "Effect": "Allow",
                        "Action": ["s3:PutObject", "s3:ListBucket"],
                        "Resource": [
                            f"arn:aws:s3:::porte-{partner.slug}-drop",
                            f"arn:aws:s3:::porte-{partner.slug}-drop/*",
                        ],
                    },
                ],
            },
        },
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_check(document: Any) -> list[Finding]:
    """Raise PolicyError for a policy Porte refuses; return parliament's remaining (advisory) findings."""
    if not isinstance(document, dict):
        raise PolicyError("The policy must be a JSON object.")
    if document.get("Version") != policies.VERSION:
        raise PolicyError(f'The policy needs "Version": "{policies.VERSION}".')
    statements = document.get("Statement")
    if not isinstance(statements, list) or not statements:
        raise PolicyError('The policy needs a non-empty "Statement" list.')
    for index, statement in enumerate(statements, start=1):
        where = f"Statement {index}" + (
            f" ({statement.get('Sid')})" if isinstance(statement, dict) and statement.get("Sid") else ""
        )
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f'{where}: "Effect" must be "Allow" or "Deny".')
        if "Principal" in statement or "NotPrincipal" in statement:
            raise PolicyError(f"{where}: an identity policy has no Principal.")
        if statement["Effect"] == "Allow":
            if "NotAction" in statement or "NotResource" in statement:
                raise PolicyError(
                    f"{where}: Allow with NotAction/NotResource grants everything else; list what "
                    "is allowed instead."
                )
            actions = [str(a) for a in _as_list(statement.get("Action", []))]
            resources = [str(r) for r in _as_list(statement.get("Resource", []))]
            if not actions or not resources:
                raise PolicyError(f'{where}: an Allow needs "Action" and "Resource".')
            if any(a in ("*", "*:*") for a in actions) and "*" in resources:
                raise PolicyError(
                    f'{where}: "Action": "*" on "Resource": "*" is administrator access; '
                    "scope the actions and resources."
                )
    text = json.dumps(document, separators=(",", ":"))
    if len(text) > MAX_POLICY_CHARS:
        raise PolicyError(f"The policy is {len(text)} characters; at most {MAX_POLICY_CHARS} are accepted.")
    findings = []
    for f in analyze_policy_string(text).findings:
        meta = parliament_config.get(f.issue, {})
        finding = Finding(str(meta.get("severity", "")), f.issue, f"{meta.get('title', f.issue)}: {f.detail}")
        if f.issue in _BLOCKING_PARLIAMENT:
            raise PolicyError(finding.detail)
        findings.append(finding)
    return findings
