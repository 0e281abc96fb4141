"""Attribution: the account names the partner, sourceIdentity the Porte user, the access key (or, in the console,
Porte's role session name) the credential and grant. Activity in a partner account by anything that is not a
session Porte minted is kept and flagged; activity in other accounts is kept, attached to no partner, or to the
partner whose account it is. Every userIdentity type has a principal. A record whose SourceIdentity and
credentials name different people is nobody's: an attribution conflict, for staff only.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from activity import services as activity
from activity.access import activity_visible_to
from activity.attribution import COLUMNS, Attributor
from activity.loading import LogData, load_files
from activity.models import ActivityEvent
from activity.simulator import CloudTrailSimulator
from grants.models import CredentialIssue
from grants.policies import role_session_name
from portal.models import User
from tests.activity.conftest import active_grant, mint
from tests.fixtures.domain import World, make_member, sign_in_as

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


def _load_one(sim: CloudTrailSimulator, account: str, records: list[dict[str, Any]]) -> list[ActivityEvent]:
    """One log file of `account` through the loader itself (whichever accounts ingestion lists), in the records'
    order."""
    _ingest_one.minute += 1  # type: ignore[attr-defined]
    key = sim.log_key(account, timezone.now() + timedelta(minutes=_ingest_one.minute))  # type: ignore[attr-defined]
    data = orjson.dumps({"Records": records})
    with transaction.atomic():
        (loaded,) = load_files(
            bucket=sim.bucket, logs=[LogData(key, gzip.compress(data), data)], attributor=Attributor()
        )
    assert loaded.error is None and not loaded.refused and len(loaded.inserted) == len(records)
    ids = [r["eventID"] for r in records]
    return sorted(ActivityEvent.objects.filter(event_id__in=ids), key=lambda e: ids.index(str(e.event_id)))


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
        # The SourceIdentity is not a column: it stays in the record, kept in its file.
        assert event.record["userIdentity"]["sessionContext"]["sourceIdentity"] == alice.source_identity
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
    assert (login.event_source, login.record["eventType"], login.aws_region) == (
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
    # (Ingestion lists only the partners' accounts: such a file comes through the loader here.)
    outside = _load_one(
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


# --- a principal for every userIdentity type ----------------------------------------------------------------------

# `userIdentity` elements as CloudTrail documents them (CloudTrail User Guide, "CloudTrail userIdentity element"),
# with the principal Porte stores for each.
_IDENTITY_STORE = "arn:aws:identitystore::123456789012:identitystore/d-9067642ac7"
IDENTITIES: list[tuple[dict[str, Any], str]] = [
    (
        {
            "type": "IdentityCenterUser",
            "accountId": "123456789012",
            "onBehalfOf": {
                "userId": "544894e8-80c1-707f-60e3-3ba6510dfac1",
                "identityStoreArn": _IDENTITY_STORE,
            },
            "credentialId": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE",
        },
        f"{_IDENTITY_STORE}/user/544894e8-80c1-707f-60e3-3ba6510dfac1",
    ),
    (
        {
            "type": "SAMLUser",
            "principalId": "SampleUkh1i4+ExamplexL/jEvs=:SamlExample",
            "userName": "SamlExample",
            "identityProvider": "bdGOnTesti4+ExamplexL/jEvs=",
        },
        "bdGOnTesti4+ExamplexL/jEvs=/SamlExample",
    ),
    (
        {
            "type": "WebIdentityUser",
            "principalId": "accounts.google.com:app-id.apps.googleusercontent.com:1234567890",
            "userName": "1234567890",
            "identityProvider": "accounts.google.com",
        },
        "accounts.google.com/1234567890",
    ),
    (
        {"type": "AWSAccount", "principalId": "AIDAJ45Q7YFFAREXAMPLE", "accountId": "123456789012"},
        "123456789012:AIDAJ45Q7YFFAREXAMPLE",
    ),
    ({"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"}, "cloudtrail.amazonaws.com"),
    # A console sign-in refused for a user name that does not exist.
    (
        {
            "type": "Unknown",
            "principalId": "",
            "accountId": "111122223333",
            "accessKeyId": "",
            "userName": "HIDDEN_DUE_TO_SECURITY_REASONS",
        },
        "111122223333:HIDDEN_DUE_TO_SECURITY_REASONS",
    ),
    (
        {
            "type": "Root",
            "principalId": "111122223333",
            "arn": "arn:aws:iam::111122223333:root",
            "accountId": "111122223333",
            "accessKeyId": "",
        },
        "arn:aws:iam::111122223333:root",
    ),
    (
        {
            "type": "FederatedUser",
            "principalId": "111122223333:Alice",
            "arn": "arn:aws:sts::111122223333:federated-user/Alice",
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLEFEDERATED",
            "sessionContext": {
                "sessionIssuer": {
                    "type": "IAMUser",
                    "principalId": "AIDAJ45Q7YFFAREXAMPLE",
                    "arn": "arn:aws:iam::111122223333:user/Admin",
                    "accountId": "111122223333",
                    "userName": "Admin",
                },
                "attributes": {"creationDate": "2023-07-11T15:46:19Z", "mfaAuthenticated": "false"},
            },
        },
        "arn:aws:sts::111122223333:federated-user/Alice",
    ),
    # What little an identity carries still names it; nothing at all names nobody.
    ({"type": "IdentityCenterUser", "accountId": "111122223333"}, "111122223333"),
    (
        {"type": "SAMLUser", "principalId": "SampleUkh1i4+ExamplexL/jEvs=:x", "identityProvider": "idp"},
        "SampleUkh1i4+ExamplexL/jEvs=:x",
    ),
    ({"type": "Unknown"}, ""),
]


def test_every_identity_type_has_a_principal(simulator, acme) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now()
    long_user = "u" * 2000
    identities = [
        *IDENTITIES,
        (
            {
                "type": "IdentityCenterUser",
                "onBehalfOf": {"userId": long_user, "identityStoreArn": _IDENTITY_STORE},
            },
            f"{_IDENTITY_STORE}/user/{long_user}"[:1024],
        ),
    ]
    records = [
        simulator.record(account, identity, "s3.amazonaws.com", "ListBuckets", at=at)
        for identity, _ in identities
    ]

    events = _load_one(simulator, account, records)

    assert [(e.identity_type, e.principal_arn) for e in events] == [
        (identity["type"], principal) for identity, principal in identities
    ]
    assert len(events[-1].principal_arn) == 1024
    # None of them is a Porte session: flagged in the partner's account, attributed to no one.
    assert {(e.flagged, e.user_id, e.grant_id) for e in events} == {(True, None, None)}


# --- attribution conflicts ----------------------------------------------------------------------------------------

CONFLICT = COLUMNS.index("attribution_conflict")


def _claiming(records: list[dict[str, Any]], source_identity: str) -> list[dict[str, Any]]:
    """The records with their SourceIdentity (session's, and the mint's request) replaced."""
    claimed = orjson.loads(orjson.dumps(records))
    for record in claimed:
        context = record["userIdentity"].get("sessionContext")
        if context is not None:
            context["sourceIdentity"] = source_identity
        if record["eventName"] == "AssumeRole":
            record["requestParameters"]["sourceIdentity"] = source_identity
            record["responseElements"]["sourceIdentity"] = source_identity
    return claimed


@pytest.fixture
def bob(acme: World) -> User:
    return make_member(acme.partner, "bob")


def test_a_source_identity_naming_another_person_than_the_credentials_is_a_conflict(  # type: ignore[no-untyped-def]
    simulator, acme, alice, alice_cli, bob, staff
) -> None:
    """Bob's credentials (by access key, by console session name, and the mint itself) with Alice's SourceIdentity:
    neither Alice's nor Bob's. Flagged in the partner's account, in no one's own list, and marked for staff."""
    bob_grant = active_grant(acme, bob)
    bob_cli = mint(bob_grant, bob, CredentialIssue.Kind.CLI)
    bob_console = mint(bob_grant, bob, CredentialIssue.Kind.CONSOLE)
    account = acme.partner.aws_account_id
    by_key = _claiming(simulator.session_records(bob_cli, reads=1, writes=0, denied=1), alice.source_identity)
    by_session = _claiming(
        simulator.session_records(bob_console, mint=False, reads=1, writes=0, denied=0), alice.source_identity
    )
    honest = simulator.session_records(alice_cli, mint=False, reads=1, writes=0, denied=0)

    # Through the Attributor: the rows, as the loader stores them.
    rows = Attributor().rows([*by_key, *by_session, *honest], path_account=account)
    assert [row[CONFLICT] for row in rows] == [True] * (len(by_key) + len(by_session)) + [False]

    events = _load_one(simulator, account, [*by_key, *by_session, *honest])
    conflicts, (own,) = events[:-1], events[-1:]
    assert [e.event_name for e in conflicts] == [
        "AssumeRole",
        "DescribeInstances",
        "CreateUser",
        "ConsoleLogin",
        "DescribeInstances",
    ]
    for event in conflicts:
        assert (event.partner, event.user, event.grant, event.credential) == (acme.partner, None, None, None)
        assert event.attribution_conflict and event.flagged and not event.is_porte_session
        assert alice.source_identity in json.dumps(event.record)  # what the record claims is kept as it says
    assert (own.user, own.credential, own.is_porte_session, own.attribution_conflict) == (
        alice,
        alice_cli,
        True,
        False,
    )

    # In no one's own list, nor in the partner admin's (flagged); staff see all of them.
    admin = make_member(acme.partner, "pat", partner_admin=True)
    conflict_ids = [e.pk for e in conflicts]
    for person in (alice, bob, admin):
        assert not activity_visible_to(person).filter(pk__in=conflict_ids).exists()
    assert activity_visible_to(alice).filter(pk=own.pk).exists()
    assert activity_visible_to(staff).filter(pk__in=conflict_ids).count() == len(conflicts)
    alice_page = sign_in_as(Client(), alice).get(reverse("activity_list"))
    assert alice_page.status_code == 200
    assert own.get_absolute_url() in alice_page.content.decode()
    assert not any(str(e.event_id) in alice_page.content.decode() for e in conflicts)
    for person in (alice, bob, admin):
        assert sign_in_as(Client(), person).get(conflicts[1].get_absolute_url()).status_code == 404

    # Staff see that it is a conflict, on the event's page (and not on an event that is none).
    client = sign_in_as(Client(), staff)
    notice = "Attribution conflict: SourceIdentity and credentials name different people"
    assert notice in client.get(conflicts[1].get_absolute_url()).content.decode()
    assert notice not in client.get(own.get_absolute_url()).content.decode()


def test_a_conflict_outside_partner_accounts_is_marked_but_not_flagged(  # type: ignore[no-untyped-def]
    simulator, acme, alice, alice_cli, bob
) -> None:
    """Flagged means "in a partner's account": outside them a conflict is only marked, and still nobody's."""
    records = _claiming(
        simulator.session_records(alice_cli, mint=False, reads=1, writes=0, denied=0), bob.source_identity
    )
    for record in records:
        record["recipientAccountId"] = OUTSIDE_ACCOUNT

    (event,) = _load_one(simulator, OUTSIDE_ACCOUNT, records)

    assert (event.partner, event.user, event.grant, event.credential) == (None, None, None, None)
    assert event.attribution_conflict and not event.flagged and not event.is_porte_session


def test_the_same_person_by_source_identity_and_credentials_is_no_conflict(  # type: ignore[no-untyped-def]
    simulator, acme, alice, alice_cli, bob
) -> None:
    """Only two people named is a conflict: an unknown SourceIdentity, or none, leaves the credentials' person."""
    unknown = _claiming(
        simulator.session_records(alice_cli, mint=False, reads=1, writes=0, denied=0),
        "porte-" + "0" * 32,
    )
    events = _load_one(simulator, acme.partner.aws_account_id, unknown)
    assert [(e.user, e.credential, e.attribution_conflict, e.flagged) for e in events] == [
        (alice, alice_cli, False, False)
    ]
