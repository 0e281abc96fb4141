"""The activity views: scoping (a partner user sees their own events, a partner admin their organisation's
Porte sessions, staff everything; an outsider nothing, as 404 or an empty list), each filter, keyset pages and
their tamper-proof cursor, exports, the grant timeline, the ingestion-lag banner and the quarantine page.

The events come from the CloudTrailSimulator's log files in moto S3 for sessions really minted through moto's STS,
ingested by the real ingestion service.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from activity import services as activity
from activity.attribution import Attributor
from activity.converters import event_time_text
from activity.filters import ActivityFilter
from activity.loading import load_log
from activity.models import ActivityEvent, QuarantinedObject
from activity.selectors import GRANT_EVENTS_AFTER, Keyset, activity_page, grant_events
from activity.simulator import CloudTrailSimulator
from activity.timeline import grant_timeline
from approvals.services import grant_extend
from grants.models import CredentialIssue, Grant
from grants.services import revocation
from portal.models import User
from portal.services import api_token_create
from tests.activity.conftest import active_grant, mint
from tests.fixtures.domain import World, make_member, sign_in_as, store_event

pytestmark = [pytest.mark.django_db, pytest.mark.aws]

OUTSIDE_ACCOUNT = "999988887777"  # in the organisation, but no partner's


@dataclass
class Trail:
    alice_grant: Grant
    bob_grant: Grant
    mallory_grant: Grant
    bob: User
    pat: User
    base: datetime


def _as(user: User) -> Client:
    client = Client()
    sign_in_as(client, user)
    return client


@pytest.fixture
def pat(acme: World) -> User:
    return make_member(acme.partner, "pat", partner_admin=True)


@pytest.fixture
def trail(simulator: CloudTrailSimulator, acme, globex, alice, mallory, pat, alice_cli) -> Trail:  # type: ignore[no-untyped-def]
    """Alice (CLI session) and Bob in Acme, a legacy IAM user in Acme's account (flagged), an account of no
    partner, and Mallory in Globex: each in its own file, minutes apart."""
    bob = make_member(acme.partner, "bob")
    bob_cli = mint(active_grant(acme, bob), bob, CredentialIssue.Kind.CLI)
    mallory_cli = mint(active_grant(globex, mallory), mallory, CredentialIssue.Kind.CLI)
    base = timezone.now().replace(microsecond=0) - timedelta(minutes=40)
    account = acme.partner.aws_account_id
    sim = simulator
    sim.write_log(account, sim.session_records(alice_cli, at=base, reads=6, writes=3, denied=2), at=base)
    sim.write_log(
        account,
        sim.session_records(bob_cli, at=base + timedelta(minutes=5), reads=4, writes=1, denied=1),
        at=base + timedelta(minutes=5),
    )
    sim.write_log(
        account,
        sim.principal_records(
            account, sim.iam_user_identity(account), at=base + timedelta(minutes=10), reads=3, denied=1
        ),
        at=base + timedelta(minutes=10),
    )
    outside = sim.principal_records(
        OUTSIDE_ACCOUNT, sim.iam_user_identity(OUTSIDE_ACCOUNT, "ops"), at=base + timedelta(minutes=12)
    )
    outside_key = sim.write_log(OUTSIDE_ACCOUNT, outside, at=base + timedelta(minutes=12))
    globex_account = globex.partner.aws_account_id
    sim.write_log(
        globex_account,
        sim.session_records(mallory_cli, at=base + timedelta(minutes=15), reads=3, writes=1, denied=1),
        at=base + timedelta(minutes=15),
    )
    activity.activity_ingest()
    # Ingestion reads partners' accounts only; events of an account that is no partner's (stored while it was one,
    # say) are loaded directly, for staff to see them unscoped.
    content = sim.encode(outside)
    load_log(
        bucket=sim.bucket,
        key=outside_key,
        content=content,
        data=gzip.decompress(content),
        attributor=Attributor(),
    )
    return Trail(alice_cli.grant, bob_cli.grant, mallory_cli.grant, bob, pat, base)


def _api_all(client: Client, query: str = "") -> list[dict[str, Any]]:
    """Every event the API lists for `query`, following `next` page by page."""
    url: str | None = f"/api/v1/activity/?{query}"
    seen: list[dict[str, Any]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += body["results"]
        url = body["next"]
    return seen


def _ids(events: Any) -> list[str]:
    return [str(e.event_id) for e in events.order_by("-event_time", "-event_id")]


# --- scoping ------------------------------------------------------------------------------------------------


def test_each_person_sees_exactly_their_scope(trail, acme, globex, alice, mallory, staff) -> None:  # type: ignore[no-untyped-def]
    everything = ActivityEvent.objects.all()
    acme_events = everything.filter(partner=acme.partner)
    assert acme_events.filter(flagged=True).exists() and everything.filter(partner__isnull=True).exists()

    def listed(user: User) -> list[str]:
        return [e["event_id"] for e in _api_all(_as(user))]

    assert listed(alice) == _ids(everything.filter(user=alice)) != []
    assert listed(trail.pat) == _ids(acme_events.filter(flagged=False))
    assert set(listed(trail.pat)) == set(listed(alice)) | set(_ids(everything.filter(user=trail.bob)))
    # Staff: all of it, flagged calls in partner accounts and accounts of no partner included.
    assert listed(staff) == _ids(everything)
    assert not set(listed(mallory)) & set(_ids(acme_events))
    assert listed(mallory) == _ids(everything.filter(user=mallory)) != []

    # The page says the same as the API.
    page = _as(mallory).get("/activity/")
    assert page.status_code == 200
    for event_id in _ids(acme_events):
        assert event_id not in page.content.decode()
    staff_page = _as(staff).get("/activity/").content.decode()
    assert "not a Porte session" in staff_page and "no partner" in staff_page


def test_outsider_gets_404_or_nothing_everywhere(trail, acme, alice, mallory) -> None:  # type: ignore[no-untyped-def]
    client = _as(mallory)
    alice_event = ActivityEvent.objects.filter(user=alice).first()
    assert alice_event is not None
    missing = client.get(f"/activity/{event_time_text(alice_event.event_time)}/{uuid.uuid4()}/")
    foreign = client.get(alice_event.get_absolute_url())
    assert missing.status_code == foreign.status_code == 404
    assert "Acme" not in foreign.content.decode()
    # Bob is in Acme but not an admin: Alice's events are not his either.
    assert _as(trail.bob).get(alice_event.get_absolute_url()).status_code == 404
    assert _as(trail.pat).get(alice_event.get_absolute_url()).status_code == 200
    # An event is found by its whole key: the right id at another time is no event.
    elsewhere = alice_event.event_time + timedelta(microseconds=1)
    assert (
        _as(trail.pat).get(f"/activity/{event_time_text(elsewhere)}/{alice_event.event_id}/").status_code
        == 404
    )
    assert _as(trail.pat).get(f"/activity/20261399T000000.000000Z/{alice_event.event_id}/").status_code == 404
    # The grant timeline, as the grant page: 404 like a grant that does not exist.
    assert client.get(f"/grants/{trail.alice_grant.pk}/").status_code == 404
    # Filters naming Acme's person or grant answer exactly as unknown ones: an empty list, not an error.
    for query in (
        f"grant={trail.alice_grant.pk}",
        f"person={alice.public_id}",
        "grant=99999999",
        f"person={uuid.uuid4()}",
    ):
        assert _api_all(client, query) == []
        page = client.get(f"/activity/?{query}")
        assert page.status_code == 200 and "No events match." in page.content.decode()
    exported = client.get(f"/activity/export.csv?person={alice.public_id}")
    assert list(csv.reader(io.StringIO(b"".join(exported.streaming_content).decode())))[1:] == []
    everything = b"".join(client.get("/activity/export.json").streaming_content)
    assert {e["partner"] for e in json.loads(everything)["events"]} == {"globex"}


def test_staff_pages_are_not_for_partner_users(trail, alice, pat) -> None:  # type: ignore[no-untyped-def]
    for user in (alice, pat):
        assert _as(user).get("/staff/activity/quarantine/").status_code == 404


def test_api_with_a_personal_token(trail, alice) -> None:  # type: ignore[no-untyped-def]
    _, token = api_token_create(user=alice, name="laptop")
    response = Client().get("/api/v1/activity/", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert {e["person_id"] for e in response.json()["results"]} == {str(alice.public_id)}
    assert Client().get("/api/v1/activity/").status_code in (401, 403)


# --- filters --------------------------------------------------------------------------------------------------


def test_each_filter_returns_exactly_the_expected_events(trail, acme, alice, staff) -> None:  # type: ignore[no-untyped-def]
    client = _as(staff)
    every = ActivityEvent.objects.all()
    since, until = trail.base + timedelta(minutes=4), trail.base + timedelta(minutes=11)
    cases = {
        f"person={alice.public_id}": every.filter(user=alice),
        f"grant={trail.bob_grant.pk}": every.filter(grant=trail.bob_grant),
        "service=ec2": every.filter(action__event_source="ec2.amazonaws.com"),
        "service=s3.amazonaws.com": every.filter(action__event_source="s3.amazonaws.com"),
        "event=DescribeInstances": every.filter(action__event_name="DescribeInstances"),
        "errors_only=on": every.exclude(error_code=""),
        "flagged_only=on": every.filter(flagged=True),
        "access=read": every.filter(action__read_only=True),
        "access=write": every.filter(action__read_only=False),
        urlencode({"since": since.isoformat(), "until": until.isoformat()}): every.filter(
            event_time__gte=since, event_time__lte=until
        ),
        f"grant={trail.alice_grant.pk}&errors_only=on": every.filter(grant=trail.alice_grant).exclude(
            error_code=""
        ),
    }
    for query, expected in cases.items():
        assert expected.exists(), query
        assert [e["event_id"] for e in _api_all(client, query)] == _ids(expected), query
        page = client.get(f"/activity/?{query}").content.decode()
        assert all(event_id in page for event_id in _ids(expected)[:50]), query
    # A partner admin's filters stay inside the organisation's scope.
    pat_errors = [e["event_id"] for e in _api_all(_as(trail.pat), "errors_only=on")]
    assert pat_errors == _ids(every.filter(partner=acme.partner, flagged=False).exclude(error_code=""))
    assert _api_all(_as(trail.pat), "flagged_only=on") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "Enter a valid date/time."),
        ("since=2026-01-02T00:00&until=2026-01-01T00:00", "before its start"),
        ("person=alice", "Enter a valid UUID."),
        ("grant=abc", "Enter a whole number."),
        ("access=delete", "Select a valid choice."),
    ],
)
def test_bad_filters_answer_400_with_a_message(trail, alice, query, message) -> None:  # type: ignore[no-untyped-def]
    client = _as(alice)
    page = client.get(f"/activity/?{query}")
    assert page.status_code == 400 and message in page.content.decode()
    api = client.get(f"/api/v1/activity/?{query}")
    assert api.status_code == 400 and message in json.dumps(api.json())
    export = client.get(f"/activity/export.csv?{query}")
    assert export.status_code == 400 and message in export.content.decode()


# --- keyset pages -----------------------------------------------------------------------------------------------


def test_pages_return_every_event_once_in_order_and_a_tampered_cursor_is_400(  # type: ignore[no-untyped-def]
    simulator, acme, alice, alice_cli
) -> None:
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=20)
    records = simulator.session_records(alice_cli, at=at, reads=90, writes=20, denied=10)
    for i, record in enumerate(records):  # several events per second, as in real trails
        record["eventTime"] = records[i // 3 * 3]["eventTime"]
    simulator.write_log(acme.partner.aws_account_id, records, at=at)
    activity.activity_ingest()
    client = _as(alice)
    expected = _ids(ActivityEvent.objects.filter(user=alice))
    assert len(expected) > 100
    assert [e["event_id"] for e in _api_all(client)] == expected
    # `next` keeps the filter.
    reads = _ids(ActivityEvent.objects.filter(user=alice, action__read_only=True))
    assert len(reads) > 50 and [e["event_id"] for e in _api_all(client, "access=read")] == reads

    # The pages: follow "Older" links.
    seen: list[str] = []
    url = "/activity/"
    for _ in range(10):
        page = client.get(url).content.decode()
        seen += [event_id for event_id in expected if f"Z/{event_id}/" in page]
        older = re.search(r'href="\?([^"]*cursor=[^"]*)">Older', page)
        if older is None:
            break
        url = "/activity/?" + html.unescape(older.group(1))
    assert sorted(seen) == sorted(expected) and len(seen) == len(expected)

    first = client.get("/api/v1/activity/").json()
    cursor = first["cursor"]
    for bad in (
        cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"),
        "x",
        cursor.replace(".", "9", 1),
    ):
        for url in (f"/activity/?cursor={bad}", f"/api/v1/activity/?cursor={bad}"):
            response = client.get(url)
            assert response.status_code == 400, url
            assert "not valid" in response.content.decode()
        assert client.get(f"/grants/{alice_cli.grant_id}/?timeline={bad}").status_code == 400


# --- exports ----------------------------------------------------------------------------------------------------


def test_exports_hold_the_filter_and_neutralise_formulas(simulator, acme, alice, alice_cli, settings) -> None:  # type: ignore[no-untyped-def]
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=10)
    records = simulator.session_records(alice_cli, at=at, reads=5, writes=2, denied=2)
    records[1]["userAgent"] = '=HYPERLINK("http://evil.example","x")'
    records[2]["errorCode"], records[2]["errorMessage"] = "@SUM(A1)", "+cmd|' /C calc'!A0"
    records[3]["userAgent"] = "-2+3"
    simulator.write_log(acme.partner.aws_account_id, records, at=at)
    activity.activity_ingest()
    client = _as(alice)

    response = client.get("/activity/export.csv?access=read")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["event_id"] for r in rows] == _ids(
        ActivityEvent.objects.filter(user=alice, action__read_only=True)
    )
    cells = [value for row in rows for value in row.values()]
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert '\'=HYPERLINK("http://evil.example","x")' in cells and "'-2+3" in cells

    everything = list(
        csv.DictReader(io.StringIO(b"".join(client.get("/activity/export.csv").streaming_content).decode()))
    )
    assert {"'@SUM(A1)", "'+cmd|' /C calc'!A0"} <= {v for row in everything for v in row.values()}

    body = json.loads(b"".join(client.get("/activity/export.json?errors_only=on").streaming_content))
    assert [e["event_id"] for e in body["events"]] == _ids(
        ActivityEvent.objects.filter(user=alice).exclude(error_code="")
    )
    assert body["truncated"] is False
    # JSON is data, not a spreadsheet: values as recorded.
    assert "@SUM(A1)" in {e["error_code"] for e in body["events"]}

    settings.ACTIVITY_EXPORT_MAX_EVENTS = 4
    capped = json.loads(b"".join(client.get("/activity/export.json").streaming_content))
    assert len(capped["events"]) == 4 and capped["truncated"] is True and "4 events" in capped["notice"]
    assert [e["event_id"] for e in capped["events"]] == _ids(ActivityEvent.objects.filter(user=alice))[:4]
    capped_csv = list(
        csv.reader(io.StringIO(b"".join(client.get("/activity/export.csv").streaming_content).decode()))
    )
    assert len(capped_csv) == 1 + 4 + 1 and capped_csv[-1][0].startswith("Export stopped at 4 events")


def test_event_detail_shows_the_full_record_escaped(simulator, acme, alice, alice_cli) -> None:  # type: ignore[no-untyped-def]
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    records = simulator.session_records(alice_cli, at=at, reads=1, writes=0, denied=0, mint=False)
    records[0]["userAgent"] = "<script>alert(1)</script>"
    simulator.write_log(acme.partner.aws_account_id, records, at=at)
    activity.activity_ingest()
    event = ActivityEvent.objects.get(event_id=records[0]["eventID"])
    page = _as(alice).get(event.get_absolute_url()).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&quot;userAgent&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page
    assert (
        "&quot;sessionContext&quot;: {" in page and f"{records[0]['requestID']}" in page
    )  # the whole record


# --- grant timeline ---------------------------------------------------------------------------------------------


def test_grant_timeline_tells_lifecycle_and_events_in_order(simulator, acme, alice, pat) -> None:  # type: ignore[no-untyped-def]
    grant = active_grant(acme, alice)
    cli = mint(grant, alice, CredentialIssue.Kind.CLI)
    simulator.write_log(
        acme.partner.aws_account_id,
        simulator.session_records(cli, at=cli.issued_at, reads=2, writes=1, denied=1),
        at=cli.issued_at,
    )
    activity.activity_ingest()
    grant_extend(grant=grant, by=timedelta(minutes=15), justification="Need to finish TICKET-7", actor=alice)
    revocation.grant_revoke(grant=grant, reason="done early", actor=pat)

    page = _as(alice).get(f"/grants/{grant.pk}/").content.decode()
    timeline = page[page.index('id="timeline"') :]
    steps = ["Requested", "Approved", "Activated", "CLI session issued", "Extended", "Revocation requested"]
    positions = [timeline.index(f"<strong>{step}</strong>") for step in steps]
    assert positions == sorted(positions)
    assert "<dt>Justification</dt><dd>Inventory check 42</dd>" in page
    assert "for 60 minutes" in timeline and "Need to finish TICKET-7" in timeline and "done early" in timeline
    events = list(ActivityEvent.objects.filter(grant=grant).order_by("event_time", "event_id"))
    assert len(events) == 5
    event_positions = [timeline.index(e.get_absolute_url()) for e in events]
    assert event_positions == sorted(event_positions)
    # The session is issued before what was done with it.
    assert positions[3] < event_positions[1]

    # Paged: every entry exactly once across pages, in time order.
    entries, after = [], None
    while True:
        tl = grant_timeline(alice, grant, after=after, size=2)
        entries += tl.entries
        if tl.next is None:
            break
        after = Keyset(tl.next.event_time, tl.next.event_id)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert [e.row.event.pk for e in entries if e.row] == [e.pk for e in events]
    assert [e.step.title for e in entries if e.step][: len(steps)] == steps


# --- ingestion lag ----------------------------------------------------------------------------------------------


def test_lag_banner_empty_up_to_date_and_behind(simulator, acme, alice, alice_cli, staff, settings) -> None:  # type: ignore[no-untyped-def]
    client = _as(alice)
    assert "No activity ingested yet." in client.get("/activity/").content.decode()
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=3)
    simulator.write_log(acme.partner.aws_account_id, simulator.session_records(alice_cli, at=at), at=at)
    activity.activity_ingest()
    page = client.get("/activity/").content.decode()
    assert "Activity up to date" in page and "Activity is behind" not in page
    # Staff see it on their pages too; partner users only on the activity pages.
    assert "Activity up to date" in _as(staff).get("/staff/partners/").content.decode()
    assert "Activity up to date" not in client.get("/").content.decode()
    settings.ACTIVITY_LAG_WARN_MINUTES = 30
    with time_machine.travel(timezone.now() + timedelta(minutes=45)):
        behind = _as(alice).get("/activity/").content.decode()
    assert "Activity is behind" in behind and 'role="alert"' in behind


# --- quarantine -------------------------------------------------------------------------------------------------


def test_staff_retry_and_resolve_quarantined_objects(simulator, acme, alice_cli, staff) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    broken = simulator.put(simulator.log_key(account, at), b"not gzip at all")
    stray = simulator.put(simulator.log_key(account, at + timedelta(minutes=1)), gzip.compress(b"{"))
    activity.activity_ingest()
    assert QuarantinedObject.objects.filter(resolved=False).count() == 2
    client = _as(staff)
    page = client.get("/staff/activity/quarantine/").content.decode()
    assert broken in page and stray in page

    repaired = simulator.session_records(alice_cli, at=at, reads=2, writes=0, denied=0)
    simulator.put(broken, simulator.encode(repaired))
    retried = QuarantinedObject.objects.get(key=broken)
    assert client.post(f"/staff/activity/quarantine/{retried.pk}/retry/").status_code == 302
    retried.refresh_from_db()
    assert retried.resolved and ActivityEvent.objects.filter(event_id=repaired[-1]["eventID"]).exists()

    dismissed = QuarantinedObject.objects.get(key=stray)
    assert client.post(f"/staff/activity/quarantine/{dismissed.pk}/resolve/").status_code == 302
    dismissed.refresh_from_db()
    assert dismissed.resolved and dismissed.resolved_by == staff
    assert "Nothing in quarantine." in client.get("/staff/activity/quarantine/").content.decode()


def test_a_grants_events_are_its_holders_over_its_time_and_no_others(acme, alice, alice_grant) -> None:  # type: ignore[no-untyped-def]
    """A grant has no index of its own: its events are read among its holder's, over its time (selectors.
    grant_events). Whatever the time of one of its events within that reach, the grant shows it; the holder's
    events of another grant, or of none, in the same hours, it does not."""
    start = alice_grant.activated_at or alice_grant.starts_at
    end = alice_grant.ends_at
    times = {
        "first minute": start,
        "last minute": end,
        "refused a day after its end": end + timedelta(days=1),
        "just within the reach": end + GRANT_EVENTS_AFTER - timedelta(minutes=1),
    }
    own = {
        label: store_event(
            event_time=at, event_source="s3.amazonaws.com", event_name="GetObject", grant=alice_grant
        )
        for label, at in times.items()
    }
    # Another grant of hers (by its id: one role holds one grant of a person at a time), and none.
    for grant_id in (alice_grant.pk + 1, None):
        store_event(
            event_time=start,
            event_source="s3.amazonaws.com",
            event_name="GetObject",
            partner_id=acme.partner.pk,
            user_id=alice.pk,
            grant_id=grant_id,
        )
    found = grant_events(ActivityEvent.objects.all(), alice_grant.pk)
    assert {e.event_id for e in found} == {e.event_id for e in own.values()}
    assert not grant_events(ActivityEvent.objects.all(), 2**62).exists()
    # The same through the grant filter of the pages.
    page = activity_page(ActivityFilter(grant=alice_grant.pk).apply(ActivityEvent.objects.all()), size=10)
    assert [e.event_id for e in page.events] == [own[label].event_id for label in reversed(list(times))]
