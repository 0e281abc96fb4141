"""The IAM documents Porte writes. Pure functions: what they say is what the tests assert.

moto does not evaluate condition keys, so these documents are where revocation's effect is decided; keep them
small, explicit and covered by exact-document tests.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

VERSION = "2012-10-17"
# IAM limits the aggregate size of a role's inline policies (whitespace excluded).
INLINE_POLICIES_MAX_CHARS = 10_240
GRANT_TAG = "porte:grant"
PERMISSIONS_POLICY_NAME = "porte-permissions"
REVOCATIONS_POLICY_NAME = "porte-revocations"


def role_session_name(*, grant_id: int, public_id: uuid.UUID) -> str:
    """The RoleSessionName Porte gives every session it mints (it appears in the assumed-role ARN; activity
    attribution reads the grant back from it)."""
    return f"porte-g{grant_id}-{public_id.hex[:8]}"


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
                    # Every session names its person and carries its grant's tag: both are what revocation
                    # denies are keyed on.
                    "StringLike": {"sts:SourceIdentity": "porte-*", f"aws:RequestTag/{GRANT_TAG}": "*"},
                },
            }
        ],
    }


def session_policy(*, ends_at: datetime, source_cidrs: list[str] | None = None) -> dict[str, Any]:
    """Passed with every AssumeRole: the session can do nothing after the grant's end, whatever its duration,
    and (when the partner has an allow-list) nothing from outside its networks.

    The Allow is the identity for intersection (effective rights stay those of the role); the Denies carry the
    grant's end and the partner's networks into AWS itself, so they hold even if every Porte worker is down.
    Calls AWS services make on the session's behalf (aws:ViaAWSService) come from AWS addresses and are exempt.
    """
    statements: list[dict[str, Any]] = [
        {"Sid": "WithinRolePermissions", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Sid": "DenyAfterGrantEnds",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": iso(ends_at)}},
        },
    ]
    if source_cidrs:
        statements.append(
            {
                "Sid": "DenyOutsidePartnerNetworks",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "NotIpAddress": {"aws:SourceIp": sorted(source_cidrs)},
                    "Bool": {"aws:ViaAWSService": "false"},
                },
            }
        )
    return {"Version": VERSION, "Statement": statements}


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


def ended_grants_policy(grant_ids: Iterable[int]) -> dict[str, Any] | None:
    """The compact form of revocation: deny every session tagged with an ended grant.

    Exact for ended grants (a grant id is never reused and an ended grant never gets a new session, so no time
    condition is needed) and about 8 characters per grant instead of ~240 per cutoff: a role with hundreds of
    revocations inside its maximum session duration stays within IAM's inline policy size limit.
    """
    ids = sorted(set(grant_ids))
    if not ids:
        return None
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "PorteEndedGrants",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:PrincipalTag/{GRANT_TAG}": [str(i) for i in ids]}},
            }
        ],
    }


def revoke_all_statement(before: datetime) -> dict[str, Any]:
    """Emergency: every session of the role issued before `before` is denied, whoever holds it."""
    return {
        "Sid": "PorteAllSessionsRevoked",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": iso(before)}},
    }


def size(document: dict[str, Any] | None) -> int:
    return len(json.dumps(document, separators=(",", ":"))) if document else 0


def role_revocations(
    revocations: list[tuple[str, datetime, int]], *, revoke_all_before: datetime | None, budget: int
) -> dict[str, Any] | None:
    """The role's `porte-revocations` document: per-person denies (SourceIdentity + TokenIssueTime) while they
    fit in `budget` characters, else the compact per-grant form; plus the emergency statement if set."""
    document = revocation_policy((identity, cutoff) for identity, cutoff, _ in revocations)
    emergency = [revoke_all_statement(revoke_all_before)] if revoke_all_before else []
    if size(document) + size({"Statement": emergency}) > budget:
        document = ended_grants_policy(grant_id for _, _, grant_id in revocations)
    statements = (document or {}).get("Statement", []) + emergency
    return {"Version": VERSION, "Statement": statements} if statements else None


def ceil_to_second(moment: datetime) -> datetime:
    """Cutoffs are whole seconds (as aws:TokenIssueTime compares); rounding up never lets an older session live."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment
