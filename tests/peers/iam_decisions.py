"""IAM decisions for the documents Porte writes, from an independent evaluator: @cloud-copilot/iam-simulate
(npm, test-only; tests/peers/iam_simulate). moto stores policies but evaluates no condition keys, so what a
deny or a session policy *does* is asked here. The caller supplies the request context (source identity,
token issue time, current time, source IP...): the evaluator says what IAM decides given them, not which keys
AWS would put in a real request."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "iam_simulate"
ACCOUNT = "111122223333"
ROLE_SESSION_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/porte-readonly/porte-session"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass
class Ask:
    """One request, and the policies in force."""

    context: dict[str, str | list[str]]
    identity_policies: list[dict[str, Any]] = field(default_factory=lambda: [ALLOW_ALL])
    session_policy: dict[str, Any] | None = None
    scps: list[dict[str, Any]] = field(
        default_factory=list
    )  # one level below the root, besides FullAWSAccess
    action: str = "ec2:DescribeInstances"
    resource: str = "*"
    principal: str = ROLE_SESSION_ARN
    resource_policy: dict[str, Any] | None = None

    def simulation(self) -> dict[str, Any]:
        simulation: dict[str, Any] = {
            "request": {
                "principal": self.principal,
                "action": self.action,
                "resource": {"resource": self.resource, "accountId": ACCOUNT},
                "contextVariables": self.context,
            },
            "identityPolicies": [
                {"name": f"identity-{i}", "policy": policy} for i, policy in enumerate(self.identity_policies)
            ],
        }
        if self.session_policy is not None:
            simulation["sessionPolicy"] = self.session_policy
        if self.resource_policy is not None:
            simulation["resourcePolicy"] = self.resource_policy
        if self.scps:
            full = {"name": "FullAWSAccess", "policy": ALLOW_ALL}
            simulation["serviceControlPolicies"] = [
                {"orgIdentifier": "r-root", "policies": [full]},
                {
                    "orgIdentifier": ACCOUNT,
                    "policies": [full] + [{"name": f"scp-{i}", "policy": p} for i, p in enumerate(self.scps)],
                },
            ]
        return simulation


def decide(*asks: Ask) -> list[str]:
    """ "Allowed", "ImplicitlyDenied" or "ExplicitlyDenied" for each request, in one run of the evaluator."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules").is_dir():
        raise RuntimeError(
            "the IAM evaluator is not installed: run `make test` (npm ci in tests/peers/iam_simulate)"
        )
    completed = subprocess.run(
        [node, str(HERE / "decide.mjs")],
        input=json.dumps([ask.simulation() for ask in asks]),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    decisions = json.loads(completed.stdout)
    errors = [d for d in decisions if d.startswith("error")]
    if errors:
        raise RuntimeError(f"the evaluator refused a simulation: {errors[0][:2000]}")
    return decisions
