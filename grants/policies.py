"""The IAM documents Porte writes. Pure functions: what they say is what the tests assert.

moto does not evaluate condition keys, so these documents are where revocation's effect is decided; keep them
small, explicit and covered by exact-document tests.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

VERSION = "2012-10-17"
PERMISSIONS_POLICY_NAME = "porte-permissions"
REVOCATIONS_POLICY_NAME = "porte-revocations"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def trust_policy(*, broker_arn: str, external_id: str) -> dict[str, Any]:
    """Only Porte's broker may assume the role, and only while naming the person (SourceIdentity).

    sts:SetSourceIdentity and sts:TagSession are granted in the same statement so the broker cannot assume the
    role without them: a session without a SourceIdentity would be unattributable and unrevocable per person.
    """
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "PorteBrokerWithSourceIdentity",
                "Effect": "Allow",
                "Principal": {"AWS": broker_arn},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {"sts:ExternalId": external_id},
                    "StringLike": {"sts:SourceIdentity": "porte-*"},
                },
            }
        ],
    }


def session_policy(*, ends_at: datetime) -> dict[str, Any]:
    """Passed with every AssumeRole: the session can do nothing after the grant's end, whatever its duration.

    The Allow is the identity for intersection (effective rights stay those of the role); the Deny carries the
    grant's end into AWS itself, so credentials die on time even if every Porte worker is down.
    """
    return {
        "Version": VERSION,
        "Statement": [
            {"Sid": "WithinRolePermissions", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Sid": "DenyAfterGrantEnds",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": iso(ends_at)}},
            },
        ],
    }


def revocation_policy(revocations: Iterable[tuple[str, datetime]]) -> dict[str, Any] | None:
    """Deny sessions issued to given people before given instants (the targeted "revoke older sessions").

    `revocations` are (source identity, cutoff) pairs. A person keeps only their latest cutoff (it subsumes the
    earlier ones), and people sharing a cutoff share a statement, so a sweep that ends many grants adds one
    statement per role, not one per grant. None when there is nothing to deny.
    """
    latest: dict[str, datetime] = {}
    for identity, cutoff in revocations:
        if identity not in latest or cutoff > latest[identity]:
            latest[identity] = cutoff
    if not latest:
        return None
    by_cutoff: dict[datetime, list[str]] = defaultdict(list)
    for identity, cutoff in latest.items():
        by_cutoff[cutoff].append(identity)
    statements = []
    for cutoff in sorted(by_cutoff):
        identities = sorted(by_cutoff[cutoff])
        statements.append(
            {
                "Sid": "PorteRevoked" + cutoff.strftime("%Y%m%dT%H%M%SZ"),
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "aws:SourceIdentity": identities if len(identities) > 1 else identities[0]
                    },
                    "DateLessThan": {"aws:TokenIssueTime": iso(cutoff)},
                },
            }
        )
    return {"Version": VERSION, "Statement": statements}


def ceil_to_second(moment: datetime) -> datetime:
    """Cutoffs are whole seconds (as aws:TokenIssueTime compares); rounding up never lets an older session live."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment
