"""The IAM documents Porte writes, asserted exactly, and the session-duration clamp.

moto does not evaluate IAM condition keys, so these tests prove what Porte *writes* (and sends to STS); they do
not claim that AWS enforces it. Whether a deny takes effect is AWS's business once the document is right.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from approvals.services import request_create
from grants import policies
from grants.models import Grant, Role
from grants.services import activation, minting
from partners.models import Partner
from portal import aws

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


# --- trust and session policies ----------------------------------------------------------------------------------


def test_trust_policy_admits_only_the_broker_naming_a_porte_source_identity():
    """Only the broker principal may assume the role, only with the partner's ExternalId, a `porte-*`
    SourceIdentity and a `porte:grant` session tag, and setting the source identity and tags is part of the
    same grant."""
    assert policies.trust_policy(
        broker_arn="arn:aws:iam::123456789012:role/PorteBroker", external_id="ext-1"
    ) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PorteBrokerWithSourceIdentity",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:role/PorteBroker"},
                "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
                "Condition": {
                    "StringEquals": {"sts:ExternalId": "ext-1"},
                    "StringLike": {"sts:SourceIdentity": "porte-*", "aws:RequestTag/porte:grant": "*"},
                },
            }
        ],
    }


def test_session_policy_denies_everything_after_the_grant_ends():
    """The session policy keeps the role's rights (Allow * intersects to the role) and carries the grant's end,
    to the second, as an aws:CurrentTime deny."""
    ends_at = datetime(2026, 3, 1, 13, 30, 15, 999_000, tzinfo=UTC)
    assert policies.session_policy(ends_at=ends_at) == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WithinRolePermissions", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {
                "Sid": "DenyAfterGrantEnds",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2026-03-01T13:30:15Z"}},
            },
        ],
    }


# --- revocation policy -----------------------------------------------------------------------------------------


def _deny(cutoff: str, sid: str, identities: object) -> dict[str, object]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"aws:SourceIdentity": identities},
            "DateLessThan": {"aws:TokenIssueTime": cutoff},
        },
    }


def test_revocation_policy_groups_people_sharing_a_cutoff_into_one_statement_with_a_sorted_list():
    """A sweep that ends many grants at one instant adds one statement, listing the people sorted."""
    document = policies.revocation_policy([("porte-c", T0), ("porte-a", T0), ("porte-b", T0)])
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            _deny("2026-03-01T12:00:00Z", "PorteRevoked20260301T120000Z", ["porte-a", "porte-b", "porte-c"])
        ],
    }


def test_revocation_policy_single_person_is_a_plain_string_and_statements_are_ordered_by_cutoff():
    later = T0 + timedelta(minutes=5, seconds=7)
    document = policies.revocation_policy([("porte-b", later), ("porte-a", T0)])
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            _deny("2026-03-01T12:00:00Z", "PorteRevoked20260301T120000Z", "porte-a"),
            _deny("2026-03-01T12:05:07Z", "PorteRevoked20260301T120507Z", "porte-b"),
        ],
    }


def test_revocation_policy_keeps_only_a_persons_latest_cutoff():
    """A later cutoff denies every session the earlier one denied, so the earlier one is dropped; people whose
    latest cutoff is shared still share a statement."""
    later = T0 + timedelta(hours=1)
    document = policies.revocation_policy(
        [
            ("porte-a", T0),
            ("porte-a", later),
            ("porte-b", later),
            ("porte-a", T0 + timedelta(minutes=1)),
        ]
    )
    assert document == {
        "Version": "2012-10-17",
        "Statement": [_deny("2026-03-01T13:00:00Z", "PorteRevoked20260301T130000Z", ["porte-a", "porte-b"])],
    }


def test_revocation_policy_is_none_when_nothing_is_revoked():
    """No revocations means no document (the provisioner deletes the inline policy instead of writing an empty
    one, which IAM would refuse)."""
    assert policies.revocation_policy([]) is None
    assert policies.revocation_policy(iter(())) is None


def test_ceil_to_second_rounds_up_only_fractions():
    """Cutoffs round up: a session issued in the same second as the revocation is still denied."""
    assert policies.ceil_to_second(T0) == T0
    assert policies.ceil_to_second(T0.replace(microsecond=1)) == T0 + timedelta(seconds=1)
    assert policies.ceil_to_second(T0.replace(microsecond=999_999)) == T0 + timedelta(seconds=1)
    assert policies.ceil_to_second(T0.replace(microsecond=500_000)).tzinfo is UTC


def test_iso_is_whole_seconds_in_utc_with_z():
    assert policies.iso(datetime(2026, 3, 1, 9, 8, 7, 654_321, tzinfo=UTC)) == "2026-03-01T09:08:07Z"


# --- DurationSeconds clamp ---------------------------------------------------------------------------------------


def _grant(*, remaining: timedelta, max_duration: timedelta = timedelta(hours=2)) -> Grant:
    role = Role(partner=Partner(slug="p"), slug="r", max_duration=max_duration)
    return Grant(role=role, starts_at=T0 - timedelta(minutes=1), ends_at=T0 + remaining)


@pytest.mark.parametrize(
    ("remaining", "max_duration", "expected"),
    [
        (timedelta(minutes=40), timedelta(hours=2), 2400),  # the remaining grant time
        (timedelta(minutes=40, seconds=30), timedelta(hours=2), 2430),
        (
            timedelta(minutes=5),
            timedelta(hours=2),
            900,
        ),  # below STS's minimum: 900, the session policy cuts it
        (timedelta(seconds=1), timedelta(hours=2), 900),
        (timedelta(hours=5), timedelta(hours=2), 7200),  # never beyond the role's maximum
    ],
)
def test_duration_seconds_is_remaining_grant_time_clamped(settings, remaining, max_duration, expected):
    settings.AWS_BROKER_ROLE_ARN = None
    assert minting._duration_seconds(_grant(remaining=remaining, max_duration=max_duration), T0) == expected


def test_duration_seconds_is_capped_at_one_hour_when_the_broker_is_a_chained_role(settings):
    """AWS refuses chained sessions over an hour, so a chained broker never asks for more."""
    settings.AWS_BROKER_ROLE_ARN = "arn:aws:iam::123456789012:role/PorteBroker"
    assert minting._duration_seconds(_grant(remaining=timedelta(hours=2)), T0) == 3600
    assert minting._duration_seconds(_grant(remaining=timedelta(minutes=20)), T0) == 1200


@pytest.mark.aws
@pytest.mark.django_db
def test_credential_mint_sends_the_clamped_duration_and_session_policy_to_sts(alice, acme):
    """Through the real service against moto: the AssumeRole call carries DurationSeconds = remaining grant time
    (min 900), the session policy with the grant's end, SourceIdentity and tags; the issued session (as moto
    reports it) lasts that long, and the recorded CredentialIssue never outlives the grant."""
    request = request_create(
        requester=alice, role=acme.role, justification="Check the inventory", duration=timedelta(minutes=30)
    )
    grant = activation.grant_activate(grant_id=request.grant.pk)
    assert grant.status == Grant.Status.ACTIVE

    sent: list[dict[str, object]] = []

    def capture(params, **_):  # type: ignore[no-untyped-def]
        sent.append(dict(params))

    sts = aws.using(aws.broker_credentials()).sts
    sts.meta.events.register("provide-client-params.sts.AssumeRole", capture)
    try:
        # 20 minutes left: the session asks for exactly that.
        Grant.objects.filter(pk=grant.pk).update(ends_at=timezone.now() + timedelta(minutes=20))
        first = minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli")
        # 5 minutes left: STS's minimum of 900 s; the session policy and CredentialIssue carry the real end.
        Grant.objects.filter(pk=grant.pk).update(ends_at=timezone.now() + timedelta(minutes=5))
        second = minting.credential_mint(grant_id=grant.pk, user=alice, kind="cli")
    finally:
        sts.meta.events.unregister("provide-client-params.sts.AssumeRole", capture)

    assert len(sent) == 2
    assert 1195 <= sent[0]["DurationSeconds"] <= 1200
    assert sent[1]["DurationSeconds"] == 900
    grant.refresh_from_db()
    assert json.loads(sent[1]["Policy"]) == policies.session_policy(ends_at=grant.ends_at)
    assert sent[1]["SourceIdentity"] == alice.source_identity
    assert sent[1]["ExternalId"] == acme.partner.external_id
    assert {t["Key"]: t["Value"] for t in sent[1]["Tags"]} == {
        "porte:partner": "acme",
        "porte:grant": str(grant.pk),
        "porte:user": str(alice.public_id),
    }

    first_lifetime = (first.credentials.expiration - first.issue.issued_at).total_seconds()
    assert 1190 <= first_lifetime <= 1205
    second_lifetime = (second.credentials.expiration - second.issue.issued_at).total_seconds()
    assert 895 <= second_lifetime <= 905
    assert second.issue.expires_at == grant.ends_at


# --- consolidation for many revocations ---------------------------------------------------------------------------


def _many(n: int) -> list[tuple[str, datetime, int]]:
    # Each person revoked at a different second: the worst case for the per-cutoff form.
    return [(f"porte-{i:032x}", T0 + timedelta(seconds=i), 1000 + i) for i in range(n)]


def test_few_revocations_keep_the_per_person_form():
    document = policies.role_revocations(_many(3), revoke_all_before=None, budget=9000)
    assert document == policies.revocation_policy((i, c) for i, c, _ in _many(3))


def test_three_hundred_revocations_fit_iams_inline_limit_in_the_compact_per_grant_form():
    """300 people revoked inside the max session duration: the per-person form would need ~70 kB (IAM allows
    10,240 characters for all inline policies of a role), so Porte writes the per-grant deny instead."""
    revocations = _many(300)
    per_person = policies.revocation_policy((i, c) for i, c, _ in revocations)
    assert policies.size(per_person) > policies.INLINE_POLICIES_MAX_CHARS
    document = policies.role_revocations(revocations, revoke_all_before=None, budget=9000)
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PorteEndedGrants",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"aws:PrincipalTag/porte:grant": [str(1000 + i) for i in range(300)]}
                },
            }
        ],
    }
    assert policies.size(document) <= 9000


def test_emergency_revoke_all_is_added_to_either_form():
    before = T0 + timedelta(hours=1)
    document = policies.role_revocations([], revoke_all_before=before, budget=9000)
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "PorteAllSessionsRevoked",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-03-01T13:00:00Z"}},
            }
        ],
    }
    compact = policies.role_revocations(_many(300), revoke_all_before=before, budget=9000)
    assert [s["Sid"] for s in compact["Statement"]] == ["PorteEndedGrants", "PorteAllSessionsRevoked"]
    assert policies.role_revocations([], revoke_all_before=None, budget=9000) is None
