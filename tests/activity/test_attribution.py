"""Attribution: the account names the partner, sourceIdentity the Porte user, the access key (or, in the console,
Porte's role session name) the credential and grant. Activity in a partner account by anything that is not a
session Porte minted is kept and flagged; activity in other accounts is kept, attached to no partner, or to the
partner whose account it is.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from activity import services as activity
from activity.models import ActivityEvent
from grants.models import CredentialIssue
from grants.policies import role_session_name
from tests.activity.conftest import active_grant, mint

pytestmark = [pytest.mark.django_db, pytest.mark.aws]

OUTSIDE_ACCOUNT = "999988887777"


def _ingest_one(sim, account: str, records: list[dict]) -> list[ActivityEvent]:  # type: ignore[no-untyped-def,type-arg]
    _ingest_one.minute += 1  # type: ignore[attr-defined]
    sim.write_log(account, records, at=timezone.now() + timedelta(minutes=_ingest_one.minute))  # type: ignore[attr-defined]
    report = activity.activity_ingest()
    assert report.events_inserted == len(records) and report.quarantined == 0
    ids = [r["eventID"] for r in records]
    return sorted(ActivityEvent.objects.filter(event_id__in=ids), key=lambda e: ids.index(str(e.event_id)))


_ingest_one.minute = 0  # type: ignore[attr-defined]


def test_cli_session_events_are_attributed_to_user_grant_and_credential(  # type: ignore[no-untyped-def]
    simulator, acme, alice, alice_grant, alice_cli
) -> None:
    account = acme.partner.aws_account_id
    events = _ingest_one(
        simulator, account, simulator.session_records(alice_cli, reads=3, writes=1, denied=2)
    )

    minted, *used = events
    assert (minted.event_name, minted.identity_type) == ("AssumeRole", "AWSAccount")
    # The mint itself (logged in the partner account, by Porte's broker) joins on the key in its response.
    assert minted.credential == alice_cli and minted.grant == alice_grant and minted.user == alice
    assert minted.is_porte_session and not minted.flagged
    for event in used:
        assert event.partner == acme.partner
        assert (event.user, event.grant, event.credential) == (alice, alice_grant, alice_cli)
        assert event.access_key_id == alice_cli.access_key_id
        assert event.source_identity == alice.source_identity
        assert event.principal_arn.endswith(
            f"assumed-role/porte-readonly/{role_session_name(grant_id=alice_grant.pk, public_id=alice.public_id)}"
        )
        assert event.is_porte_session and not event.flagged
        assert event.source_ip == "203.0.113.9"
    assert [(e.event_name, e.read_only) for e in used[:4]] == [
        ("DescribeInstances", True),
        ("DescribeVpcs", True),
        ("ListBuckets", True),
        ("CreateTags", False),
    ]
    denied = [e for e in used if e.error_code]
    assert [e.error_code for e in denied] == ["AccessDenied", "Client.UnauthorizedOperation"]
    assert "is not authorized to perform: iam:CreateUser" in denied[0].error_message
    # The full record is kept for the detail page.
    assert denied[0].record["userIdentity"]["sessionContext"]["sourceIdentity"] == alice.source_identity


def test_console_sessions_are_attributed_by_porte_session_name(  # type: ignore[no-untyped-def]
    simulator, acme, alice, alice_grant, alice_console
) -> None:
    """The console signs requests with keys of its own: no CredentialIssue matches them, the grant comes from the
    role session name Porte chose (checked against the SourceIdentity's user)."""
    events = _ingest_one(simulator, acme.partner.aws_account_id, simulator.session_records(alice_console))
    login = next(e for e in events if e.event_name == "ConsoleLogin")
    assert (login.event_source, login.event_type, login.aws_region) == (
        "signin.amazonaws.com",
        "AwsConsoleSignIn",
        "us-east-1",
    )
    for event in events[1:]:
        assert event.access_key_id != alice_console.access_key_id
        assert (event.user, event.grant, event.credential) == (alice, alice_grant, None)
        assert event.is_porte_session and not event.flagged


def test_other_principals_in_a_partner_account_are_kept_and_flagged(  # type: ignore[no-untyped-def]
    simulator, acme, alice, alice_grant
) -> None:
    account = acme.partner.aws_account_id
    session = role_session_name(grant_id=alice_grant.pk, public_id=alice.public_id)
    records = [
        *simulator.principal_records(
            account, simulator.iam_user_identity(account), at=timezone.now(), denied=1
        ),
        # A role chained from Alice's session keeps her SourceIdentity: it is her, but not a session Porte minted.
        *simulator.principal_records(
            account,
            simulator.role_identity(account, "data-admin", "chained", source_identity=alice.source_identity),
            at=timezone.now(),
            reads=1,
        ),
        # Someone naming their session like Porte's, without Porte's SourceIdentity: the claim does not hold.
        *simulator.principal_records(
            account,
            simulator.role_identity(account, "porte-readonly", session.replace(session[-8:], "deadbeef")),
            at=timezone.now(),
            reads=1,
        ),
    ]
    events = _ingest_one(simulator, account, records)
    assert all(e.partner == acme.partner and e.flagged and not e.is_porte_session for e in events)
    iam_user = events[:3]
    assert {(e.identity_type, e.user, e.grant) for e in iam_user} == {("IAMUser", None, None)}
    assert iam_user[0].principal_arn == f"arn:aws:iam::{account}:user/legacy-deployer"
    assert iam_user[2].error_code == "AccessDenied"
    chained, forged = events[3], events[4]
    assert (chained.user, chained.grant) == (alice, None)
    assert (forged.user, forged.grant) == (None, None)


def test_events_of_other_accounts_go_to_their_partner_or_to_none(  # type: ignore[no-untyped-def]
    simulator, acme, globex, alice_cli, mallory
) -> None:
    outside = _ingest_one(
        simulator,
        OUTSIDE_ACCOUNT,
        simulator.principal_records(
            OUTSIDE_ACCOUNT, simulator.iam_user_identity(OUTSIDE_ACCOUNT), at=timezone.now()
        ),
    )
    assert {(e.account_id, e.partner, e.flagged, e.user) for e in outside} == {
        (OUTSIDE_ACCOUNT, None, False, None)
    }

    mallory_cli = mint(active_grant(globex, mallory), mallory, CredentialIssue.Kind.CLI)
    globex_events = _ingest_one(
        simulator, globex.partner.aws_account_id, simulator.session_records(mallory_cli)
    )
    assert {(e.partner, e.user, e.flagged) for e in globex_events} == {(globex.partner, mallory, False)}
    assert ActivityEvent.objects.filter(partner=acme.partner).count() == 0

    # Alice's key used in Globex's account (it cannot be, but the record says so): hers, yet not a Porte
    # session of Globex's, so flagged there.
    misplaced = simulator.session_records(alice_cli, mint=False, reads=1, writes=0, denied=0)
    for record in misplaced:
        record["recipientAccountId"] = globex.partner.aws_account_id
    (event,) = _ingest_one(simulator, globex.partner.aws_account_id, misplaced)
    assert (event.partner, event.user, event.credential) == (globex.partner, alice_cli.grant.user, alice_cli)
    assert event.flagged and not event.is_porte_session
