"""Ingestion progresses by evidence: a prefix's cursor moves only past objects it ingested, quarantined or recorded
as not log files; names that do not parse never block the names after them; only partners' accounts are read;
and a prefix that stalls is seen (staff page, banner, /metrics) and alerted on.

Real moto S3 and PostgreSQL; the log files come from the CloudTrailSimulator (moto emits no CloudTrail)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from activity import progress, scope, trail
from activity import services as activity
from activity.ingest import ingest
from activity.models import ActivityEvent, Alert, QuarantinedObject, TrailCursor, TrailFile
from activity.simulator import CloudTrailSimulator
from grants.models import CredentialIssue, Grant
from partners.models import Partner
from portal.models import User
from tests.fixtures.domain import sign_in_as

pytestmark = [pytest.mark.django_db, pytest.mark.aws]

OUTSIDE_ACCOUNT = "999988887777"


def _records(sim: CloudTrailSimulator, issue: CredentialIssue, at: datetime, reads: int = 2) -> list[dict]:  # type: ignore[type-arg]
    return sim.session_records(issue, mint=False, reads=reads, writes=0, denied=0, at=at)


def _region_prefix(sim: CloudTrailSimulator, account: str, region: str | None = None) -> str:
    return sim.log_key(account, timezone.now(), region=region).rsplit("/", 4)[0] + "/"


def _cursor(account: str, region: str = "eu-west-1") -> TrailCursor:
    return TrailCursor.objects.get(prefix__endswith=f"/{account}/CloudTrail/{region}/")


def test_objects_that_are_not_log_files_never_hide_the_files_after_them(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=20)
    first = simulator.write_log(account, _records(simulator, alice_cli, at), at=at)
    region = _region_prefix(simulator, account)
    day = first.rsplit("/", 1)[0] + "/"
    good_name = first.rsplit("/", 1)[1]
    strays = [
        simulator.put(f"{region}notes.txt", b"written by hand"),  # sorts after every day folder
        simulator.put(f"{day}zzz-export.json.gz", simulator.encode(_records(simulator, alice_cli, at))),
        simulator.put(f"{day}{good_name}.tmp", b"partial upload"),  # an odd suffix on a good name
        simulator.put(f"{day}{good_name.replace('.json.gz', '.json')}", b"{}"),  # not compressed
        simulator.put(f"{region}9999/99/99/{good_name}", b""),  # a day that is not a date
    ]

    report = activity.activity_ingest()
    assert (report.objects, report.not_log_files, report.quarantined) == (6, 5, 0)
    cursor = _cursor(account)
    assert cursor.last_key == first and cursor.not_log_files == 5 and cursor.objects_ingested == 1
    recorded = QuarantinedObject.objects.filter(reason=QuarantinedObject.Reason.NOT_A_LOG_FILE)
    assert sorted(recorded.values_list("key", flat=True)) == sorted(strays)
    assert all("not a CloudTrail log file" in o.error for o in recorded)

    # Later files, in the same day and in the next day's folder, are still found; the strays are not read again.
    later = [
        simulator.write_log(account, _records(simulator, alice_cli, at), at=at + timedelta(minutes=5)),
        simulator.write_log(account, _records(simulator, alice_cli, at), at=at + timedelta(days=1)),
    ]
    again = activity.activity_ingest()
    assert (again.objects, again.not_log_files, again.events_inserted) == (2, 0, 4)
    assert _cursor(account).last_key == later[1]
    assert set(TrailFile.objects.values_list("key", flat=True)) == {first, *later}
    assert activity.activity_ingest().objects == 0
    assert QuarantinedObject.objects.get(key=strays[0]).attempts == 1

    # A retry reads a stray anyway: an exported copy of log records is ingested, junk stays open; and neither is
    # read again by the next runs, whatever the retry found.
    assert activity.quarantined_object_retry(obj=QuarantinedObject.objects.get(key=strays[1])).resolved
    junk = activity.quarantined_object_retry(obj=QuarantinedObject.objects.get(key=strays[0]))
    assert not junk.resolved and junk.attempts == 2
    assert activity.activity_ingest().objects == 0
    assert QuarantinedObject.objects.get(key=strays[0]).attempts == 2


def test_a_prefix_that_only_ever_holds_junk_is_listed_and_recorded(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    junk = simulator.put(_region_prefix(simulator, account, "us-west-2") + "README", b"hello")
    report = activity.activity_ingest()
    assert report.not_log_files == 1
    cursor = _cursor(account, "us-west-2")
    assert cursor.last_key == "" and cursor.listed_at is not None and cursor.backlog_since is None
    assert QuarantinedObject.objects.get(key=junk).reason == QuarantinedObject.Reason.NOT_A_LOG_FILE
    (status,) = [s for s in progress.prefix_statuses() if s.region == "us-west-2"]
    assert not status.stalled and status.lag is None

    # Its first real log file is ingested whatever sorts around it.
    at = timezone.now().replace(second=0, microsecond=0)
    key = simulator.write_log(account, _records(simulator, alice_cli, at), at=at, region="us-west-2")
    assert activity.activity_ingest().events_inserted == 2
    assert _cursor(account, "us-west-2").last_key == key


def test_a_late_file_in_the_previous_days_folder_is_still_ingested(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    """Across midnight: the resume point is in the previous day's folder, in CloudTrail's naming."""
    account = acme.partner.aws_account_id
    midnight = datetime(2026, 12, 5, tzinfo=UTC)
    newest = simulator.write_log(
        account, _records(simulator, alice_cli, midnight), at=midnight + timedelta(minutes=2)
    )
    assert activity.activity_ingest().objects == 1
    late = simulator.write_log(
        account, _records(simulator, alice_cli, midnight), at=midnight - timedelta(minutes=2)
    )
    assert "/2026/12/04/" in late and late < newest
    too_late = simulator.write_log(  # earlier than the lookback (30 minutes): the notification path's case
        account, _records(simulator, alice_cli, midnight), at=midnight - timedelta(hours=2)
    )
    report = activity.activity_ingest()
    assert report.objects == 1 and report.events_inserted == 2
    assert TrailFile.objects.filter(key=late).exists() and not TrailFile.objects.filter(key=too_late).exists()


def test_only_partners_accounts_are_read(simulator, acme, globex, alice_cli) -> None:  # type: ignore[no-untyped-def]
    at = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    outside = simulator.write_log(
        OUTSIDE_ACCOUNT,
        simulator.principal_records(OUTSIDE_ACCOUNT, simulator.iam_user_identity(OUTSIDE_ACCOUNT), at=at),
        at=at,
    )
    simulator.write_log(acme.partner.aws_account_id, _records(simulator, alice_cli, at), at=at)
    globex_account = globex.partner.aws_account_id
    simulator.write_log(
        globex_account,
        simulator.principal_records(globex_account, simulator.iam_user_identity(globex_account), at=at),
        at=at,
    )
    assert set(scope.accounts_in_scope()) == {acme.partner.aws_account_id, globex_account}
    report = activity.activity_ingest()
    assert report.prefixes == 2 and report.objects == 2
    assert not TrailCursor.objects.filter(prefix__contains=OUTSIDE_ACCOUNT).exists()
    assert not TrailFile.objects.filter(key=outside).exists()
    assert not ActivityEvent.objects.filter(context__account_id=OUTSIDE_ACCOUNT).exists()


def test_an_offboarded_partner_is_read_for_a_day_after_its_last_grant(acme, alice_grant: Grant) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    ended = timezone.now() - timedelta(hours=2)
    Grant.objects.filter(pk=alice_grant.pk).update(status=Grant.Status.REVOKED, ended_at=ended)
    Partner.objects.filter(pk=acme.partner.pk).update(status=Partner.Status.OFFBOARDED)
    assert scope.accounts_in_scope() == {account: acme.partner.pk}
    assert account not in scope.accounts_in_scope(
        now=ended + scope.OFFBOARDED_READ_FOR + timedelta(seconds=1)
    )


def test_a_prefix_left_behind_stalls_is_alerted_once_and_recovers(
    simulator, acme, alice_cli, alice, globex, mallory, staff: User, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ACTIVITY_LAG_WARN_MINUTES = 30
    account = acme.partner.aws_account_id
    at = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=20)
    keys = [
        simulator.write_log(account, _records(simulator, alice_cli, at), at=at + timedelta(minutes=m))
        for m in (0, 5, 10)
    ]
    # A run that stops at its budget leaves objects waiting: that is recorded, not yet a stall.
    assert activity.activity_ingest(max_objects=1).more
    cursor = _cursor(account)
    assert cursor.last_key == keys[0] and cursor.backlog_since is not None
    assert not progress.stall_alerts()

    later = timezone.now() + timedelta(minutes=45)
    with time_machine.travel(later):
        (status,) = progress.prefix_statuses()
        assert status.stalled.startswith("objects have waited since")
        (alert,) = progress.stall_alerts()
        assert alert.rule == Alert.Rule.INGESTION_STALLED and alert.partner_id == acme.partner.pk
        assert not progress.stall_alerts()  # the same stall: no second alert
        client = Client()
        sign_in_as(client, staff)
        page = client.get("/staff/activity/quarantine/").content.decode()
        assert "Stalled" in page and account in page
        banner = client.get("/activity/").content.decode()
        assert "Activity is behind" in banner and "1 account/region stalled" in banner
        metrics = client.get("/metrics").content.decode()
        assert f'porte_activity_prefix_stalled{{account="{account}",region="eu-west-1"}} 1' in metrics
        # Partner people hear of their own partner's stalls only, and get no link to the staff page.
        for person, told in ((alice, True), (mallory, False)):
            partner_client = Client()
            sign_in_as(partner_client, person)
            page = partner_client.get("/activity/").content.decode()
            assert ("1 account/region stalled" in page) is told and "#prefixes" not in page

        # The next runs catch up: nothing waits, nothing is stalled.
        activity.activity_ingest()
        assert _cursor(account).last_key == keys[2] and _cursor(account).backlog_since is None
        (status,) = progress.prefix_statuses()
        assert not status.stalled
        assert "Activity is behind" not in client.get("/activity/").content.decode()


def test_a_run_that_finds_nothing_still_counts_as_reading_the_trail(
    simulator, acme, alice_cli, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.ACTIVITY_LAG_WARN_MINUTES = 30
    at = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    simulator.write_log(acme.partner.aws_account_id, _records(simulator, alice_cli, at), at=at)
    activity.activity_ingest()
    with time_machine.travel(timezone.now() + timedelta(minutes=45)):
        assert activity.activity_ingest().objects == 0
        lag = progress.last_listing()
        assert lag is not None and timezone.now() - lag < timedelta(minutes=1)
        from activity.lag import ingestion_lag

        assert not ingestion_lag().behind  # quiet partners are not a lag


def test_prefixes_left_out_at_the_budget_go_first_next_time(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    at = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=10)
    for region in ("eu-west-1", "us-east-1"):
        for minutes in (0, 5):
            simulator.write_log(
                account, _records(simulator, alice_cli, at), at=at + timedelta(minutes=minutes), region=region
            )
    source = trail.S3TrailSource(
        bucket=simulator.bucket, root=simulator.log_key(account, at).split(account)[0]
    )
    first = ingest(source, accounts=[account], max_objects=2, lookback=timedelta(minutes=30))
    second = ingest(source, accounts=[account], max_objects=2, lookback=timedelta(minutes=30))
    assert first.objects == second.objects == 2
    assert {c.prefix.rsplit("/", 2)[1]: c.objects_ingested for c in TrailCursor.objects.all()} == {
        "eu-west-1": 2,
        "us-east-1": 2,
    }
