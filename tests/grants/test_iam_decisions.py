"""What the IAM documents Porte writes decide, asked of an independent evaluator (tests/peers/iam_decisions.py).

moto stores these documents but evaluates no condition key, so the other tests can only assert their exact
text. Here each document, as Porte's own functions build it, is put in front of real requests: a revoked
person's older session is denied and their newer one is not, another person is untouched, the compact per-grant
form and the emergency revoke-all do what they say, the session policy ends the session at the grant's end and
outside the partner's networks (but not for calls AWS services make on its behalf), the trust policy admits only
Porte's broker naming a person and a grant with the partner's external id, and the SCPs keep partner accounts in
the organization, the trail running and work in the partner's regions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grants import policies
from partners.aws_account import guardrails_policy_document, regions_policy_document
from tests.peers.iam_decisions import ACCOUNT, Ask, decide

ALLOWED, DENIED, IMPLICIT = "Allowed", "ExplicitlyDenied", "ImplicitlyDenied"
CUTOFF = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
ALICE, BOB = "porte-a11ce", "porte-b0b"


def _session(
    identity: str, issued: datetime, *, grant: str = "41", now: datetime | None = None
) -> dict[str, str]:
    return {
        "aws:SourceIdentity": identity,
        "aws:TokenIssueTime": policies.iso(issued),
        "aws:CurrentTime": policies.iso(now or issued + timedelta(minutes=1)),
        f"aws:PrincipalTag/{policies.GRANT_TAG}": grant,
        "aws:SourceIp": "198.51.100.7",
        "aws:ViaAWSService": "false",
    }


def _with(document: dict[str, object] | None, context: dict[str, str]) -> Ask:
    assert document is not None
    return Ask(context=context, identity_policies=[Ask(context={}).identity_policies[0], document])


def test_a_revoked_persons_older_session_is_denied_and_nothing_else() -> None:
    deny = policies.revocation_policy([(ALICE, CUTOFF), (BOB, CUTOFF + timedelta(hours=1))])
    assert decide(
        _with(deny, _session(ALICE, CUTOFF - timedelta(seconds=1))),  # issued before her cutoff
        _with(deny, _session(ALICE, CUTOFF)),  # issued at it: a re-grant's first session
        _with(deny, _session(ALICE, CUTOFF + timedelta(minutes=5))),
        _with(deny, _session("porte-carol", CUTOFF - timedelta(hours=2))),  # nobody revoked Carol
        _with(deny, _session(BOB, CUTOFF + timedelta(minutes=30))),  # Bob's own, later cutoff
    ) == [DENIED, ALLOWED, ALLOWED, ALLOWED, DENIED]


def test_a_person_keeps_only_their_latest_cutoff() -> None:
    deny = policies.revocation_policy([(ALICE, CUTOFF), (ALICE, CUTOFF + timedelta(hours=1))])
    assert decide(
        _with(deny, _session(ALICE, CUTOFF + timedelta(minutes=30))),
        _with(deny, _session(ALICE, CUTOFF + timedelta(hours=1, seconds=1))),
    ) == [DENIED, ALLOWED]


def test_the_compact_form_denies_sessions_of_ended_grants_only() -> None:
    deny = policies.ended_grants_policy([41, 42])
    assert decide(
        _with(deny, _session(ALICE, CUTOFF, grant="41")),
        _with(deny, _session(ALICE, CUTOFF, grant="42")),
        _with(deny, _session(ALICE, CUTOFF, grant="43")),  # her newer grant on the role
        _with(deny, _session(BOB, CUTOFF, grant="410")),  # no prefix matching
    ) == [DENIED, DENIED, ALLOWED, ALLOWED]


def test_the_role_document_falls_back_to_the_compact_form_and_keeps_revoke_all() -> None:
    # 60 people with 60 different cutoffs: ~240 characters each would not fit the 2,000 left for this document.
    revocations = [(f"porte-{i:04x}", CUTOFF + timedelta(seconds=i), i) for i in range(60)]
    document = policies.role_revocations(
        revocations, revoke_all_before=CUTOFF - timedelta(hours=1), budget=2000
    )
    assert document is not None and [s["Sid"] for s in document["Statement"]] == [
        "PorteEndedGrants",
        "PorteAllSessionsRevoked",
    ]
    assert decide(
        _with(document, _session("porte-0007", CUTOFF + timedelta(minutes=1), grant="7")),
        _with(document, _session("porte-0007", CUTOFF + timedelta(minutes=1), grant="700")),
        _with(
            document, _session("porte-ffff", CUTOFF - timedelta(hours=2), grant="900")
        ),  # before revoke-all
        _with(document, _session("porte-ffff", CUTOFF - timedelta(minutes=59), grant="900")),
    ) == [DENIED, ALLOWED, DENIED, ALLOWED]


def test_the_session_policy_ends_the_session_at_the_grants_end_and_outside_the_partners_networks() -> None:
    ends_at = CUTOFF + timedelta(minutes=30)
    policy = policies.session_policy(ends_at=ends_at, source_cidrs=["198.51.100.0/24", "203.0.113.8/29"])

    def ask(now: datetime, ip: str = "198.51.100.7", via_service: str = "false") -> Ask:
        context = {**_session(ALICE, CUTOFF, now=now), "aws:SourceIp": ip, "aws:ViaAWSService": via_service}
        return Ask(context=context, session_policy=policy)

    assert decide(
        ask(ends_at - timedelta(seconds=1)),
        ask(ends_at + timedelta(seconds=1)),  # the worker that should have denied it is down: AWS still does
        ask(ends_at - timedelta(minutes=1), ip="203.0.113.12"),
        ask(ends_at - timedelta(minutes=1), ip="192.0.2.50"),
        ask(
            ends_at - timedelta(minutes=1), ip="192.0.2.50", via_service="true"
        ),  # e.g. CloudFormation for it
        ask(ends_at + timedelta(seconds=1), ip="192.0.2.50", via_service="true"),  # but never after the end
    ) == [ALLOWED, DENIED, ALLOWED, DENIED, ALLOWED, DENIED]
    without_networks = policies.session_policy(ends_at=ends_at)
    assert decide(
        Ask(
            context={
                **_session(ALICE, CUTOFF, now=ends_at - timedelta(minutes=1)),
                "aws:SourceIp": "192.0.2.50",
            },
            session_policy=without_networks,
        )
    ) == [ALLOWED]


def test_the_trust_policy_admits_only_the_broker_naming_a_person_and_a_grant() -> None:
    broker = "arn:aws:iam::999988887777:role/porte-broker"
    role = f"arn:aws:iam::{ACCOUNT}:role/porte/porte-readonly"
    trust = policies.trust_policy(broker_arn=broker, external_id="porte-acme-3f2a")

    def assume(principal: str = broker, **context: str) -> Ask:
        base = {
            "sts:ExternalId": "porte-acme-3f2a",
            "sts:SourceIdentity": ALICE,
            f"aws:RequestTag/{policies.GRANT_TAG}": "41",
            "aws:TagKeys": [policies.GRANT_TAG],
        }
        return Ask(
            context={**base, **context},
            action="sts:AssumeRole",
            resource=role,
            principal=principal,
            resource_policy=trust,
        )

    no_tag = assume()
    no_tag.context = {k: v for k, v in no_tag.context.items() if not k.startswith("aws:RequestTag")}
    assert decide(
        assume(),
        assume(**{"sts:ExternalId": "porte-globex-0000"}),  # another partner's external id
        assume(**{"sts:SourceIdentity": "mallory"}),  # a session not naming a Porte person
        assume(principal="arn:aws:iam::999988887777:role/someone-else"),
        no_tag,  # no grant tag: unrevocable per grant
    ) == [ALLOWED, IMPLICIT, IMPLICIT, IMPLICIT, IMPLICIT]


def test_the_scps_keep_partner_accounts_in_the_organization_logging_and_in_their_regions() -> None:
    scps = [guardrails_policy_document(), regions_policy_document(["eu-west-1"])]

    def call(action: str, region: str = "eu-west-1") -> Ask:
        return Ask(context={"aws:RequestedRegion": region}, action=action, scps=scps)

    assert decide(
        call("ec2:DescribeInstances"),
        call("ec2:DescribeInstances", region="us-east-1"),
        call("iam:ListRoles", region="us-east-1"),  # a global service: its calls are made in us-east-1
        call("cloudtrail:StopLogging"),
        call("cloudtrail:DeleteTrail"),
        call("organizations:LeaveOrganization"),
        call("s3:ListAllMyBuckets"),
    ) == [ALLOWED, DENIED, ALLOWED, DENIED, DENIED, DENIED, ALLOWED]
