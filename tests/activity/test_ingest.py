"""Ingestion of the organisation trail from moto S3 into PostgreSQL: incremental (a cursor per prefix), idempotent
on eventID, digest files skipped, unreadable files quarantined with their error while the others are ingested.

The log files are written by the CloudTrailSimulator (moto emits no CloudTrail) for sessions really minted
through moto's STS by Porte's credential_mint.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from activity import services as activity
from activity import tasks
from activity.models import ActivityEvent, QuarantinedObject, TrailCursor, TrailFile
from activity.simulator import CloudTrailSimulator
from grants.models import CredentialIssue
from portal import aws
from portal.models import AuditEvent
from tests.fixtures.domain import World

pytestmark = [pytest.mark.django_db, pytest.mark.aws]

OUTSIDE_ACCOUNT = "999988887777"  # in the organisation, but no partner's


def _write_day(
    sim: CloudTrailSimulator, acme: World, cli: CredentialIssue, console: CredentialIssue
) -> list[str]:
    """Three files in Acme's account, one in an outside account, and a digest for each: returns the log keys."""
    account = acme.partner.aws_account_id
    base = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=30)
    keys = [
        sim.write_log(account, sim.session_records(cli, reads=4, writes=2, denied=1), at=base),
        sim.write_log(
            account, sim.session_records(console, reads=3, writes=1, denied=2), at=base + timedelta(minutes=5)
        ),
        sim.write_log(
            account,
            sim.principal_records(account, sim.iam_user_identity(account), at=base, reads=3, denied=1),
            at=base + timedelta(minutes=10),
        ),
        sim.write_log(
            OUTSIDE_ACCOUNT,
            sim.principal_records(OUTSIDE_ACCOUNT, sim.iam_user_identity(OUTSIDE_ACCOUNT, "ops"), at=base),
            at=base + timedelta(minutes=10),
        ),
    ]
    sim.write_digest(account, keys[:3], at=base + timedelta(minutes=60))
    sim.write_digest(OUTSIDE_ACCOUNT, keys[3:], at=base + timedelta(minutes=60))
    return keys


def _records_in(keys: list[str]) -> list[dict]:  # type: ignore[type-arg]
    s3 = aws.management().s3
    records: list[dict] = []  # type: ignore[type-arg]
    for key in keys:
        body = s3.get_object(Bucket="porte-org-trail", Key=key)["Body"].read()
        records += orjson.loads(gzip.decompress(body))["Records"]
    return records


def test_reingesting_the_same_files_adds_nothing(simulator, acme, alice_cli, alice_console) -> None:  # type: ignore[no-untyped-def]
    keys = _write_day(simulator, acme, alice_cli, alice_console)
    written = _records_in(keys)

    written = _records_in(keys[:3])  # Acme's: the outside account is no partner's, and is never read

    first = activity.activity_ingest()
    assert first.objects == 3 and first.quarantined == 0 and first.not_log_files == 0
    assert first.prefixes == 1  # Acme's account, one region
    assert first.events_inserted == first.events_read == len(written) == ActivityEvent.objects.count()
    assert set(ActivityEvent.objects.values_list("event_id", flat=True)) == {
        uuid.UUID(r["eventID"]) for r in written
    }
    cursor = TrailCursor.objects.get()
    assert f"/{acme.partner.aws_account_id}/CloudTrail/" in cursor.prefix
    assert cursor.last_key == max(keys[:3]) and cursor.objects_ingested == 3
    assert not TrailFile.objects.filter(key__contains=f"/{OUTSIDE_ACCOUNT}/").exists()

    # The next run finds nothing new behind the cursors.
    again = activity.activity_ingest()
    assert (again.objects, again.events_inserted) == (0, 0)

    # Forget every cursor: the same files are read again, and still nothing is added.
    TrailCursor.objects.all().delete()
    replay = activity.activity_ingest()
    assert replay.objects == 3 and replay.events_read == len(written)
    assert replay.events_inserted == 0
    assert ActivityEvent.objects.count() == len(written)
    assert TrailFile.objects.count() == 3  # each file kept once

    # The same file delivered again under another name (a duplicate delivery): nothing new, nothing kept.
    account = acme.partner.aws_account_id
    body = aws.management().s3.get_object(Bucket="porte-org-trail", Key=keys[0])["Body"].read()
    simulator.put(simulator.log_key(account, timezone.now()), body)
    duplicate = activity.activity_ingest()
    assert (duplicate.objects, duplicate.events_read, duplicate.events_inserted) == (
        1,
        len(_records_in(keys[:1])),
        0,
    )
    assert TrailFile.objects.count() == 3

    # New activity after that is picked up from where the cursor is.
    later = timezone.now() + timedelta(minutes=5)
    new_key = simulator.write_log(
        account, simulator.session_records(alice_cli, mint=False, reads=2, writes=0, denied=0), at=later
    )
    more = tasks.activity_ingest()  # the beat task, run in-process
    assert more["objects"] == 1 and more["events_inserted"] == 2
    assert TrailCursor.objects.get(prefix__contains=f"/{account}/").last_key == new_key


def test_digest_files_are_skipped(simulator, acme, alice_cli, alice_console) -> None:  # type: ignore[no-untyped-def]
    keys = _write_day(simulator, acme, alice_cli, alice_console)
    listed = [o["Key"] for o in aws.management().s3.list_objects_v2(Bucket="porte-org-trail")["Contents"]]
    digests = [k for k in listed if "/CloudTrail-Digest/" in k]
    assert len(digests) == 2 and len(listed) == len(keys) + 2

    report = activity.activity_ingest()
    assert report.objects == 3  # Acme's; the digests are never even listed as candidates
    assert not QuarantinedObject.objects.exists()
    assert not any("digestS3Object" in e.record for e in ActivityEvent.objects.all())
    assert not TrailCursor.objects.filter(prefix__contains="CloudTrail-Digest").exists()


def test_corrupt_and_truncated_files_are_quarantined_and_the_others_ingested(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli, staff
) -> None:
    account = acme.partner.aws_account_id
    base = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=30)
    good = simulator.session_records(alice_cli, reads=3, writes=1, denied=1)
    later = simulator.session_records(alice_cli, mint=False, reads=2, writes=1, denied=0)
    complete = gzip.compress(orjson.dumps({"Records": later}))
    half_json = orjson.dumps({"Records": later})[:700]
    bad = {
        simulator.log_key(account, base + timedelta(minutes=1)): b"\x1f\x8b\x08\x00 not deflate data" * 9,
        simulator.log_key(account, base + timedelta(minutes=2)): complete[: len(complete) // 2],
        simulator.log_key(account, base + timedelta(minutes=3)): gzip.compress(half_json),
        simulator.log_key(account, base + timedelta(minutes=4)): gzip.compress(
            b'{"Records": {"not": "a list"}}'
        ),
        # Valid JSON whose second record's time is not a time: that record alone is refused (and recorded).
        simulator.log_key(account, base + timedelta(minutes=4, seconds=30)): gzip.compress(
            orjson.dumps(
                {"Records": [good[1] | {"eventID": str(uuid.uuid4())}, later[0] | {"eventTime": "nope"}]}
            )
        ),
    }
    first = simulator.write_log(account, good, at=base)
    for key, body in bad.items():
        simulator.put(key, body)
    last = simulator.write_log(account, later, at=base + timedelta(minutes=5))

    report = activity.activity_ingest()

    assert report.objects == 7 and report.quarantined == 5 and report.records_refused == 1
    assert report.events_inserted == len(good) + len(later) + 1 == ActivityEvent.objects.count()
    errors = dict(QuarantinedObject.objects.values_list("key", "error"))
    reasons = dict(QuarantinedObject.objects.values_list("key", "reason"))
    assert [reasons[key] for key in bad] == ["unreadable"] * 4 + ["bad_records"]
    assert QuarantinedObject.objects.get(key=list(bad)[4]).records_refused == 1
    assert set(errors) == set(bad)
    keys = list(bad)
    assert errors[keys[0]].startswith("not a valid gzip file")
    assert errors[keys[1]].startswith("truncated gzip file: the stream ends early")
    assert errors[keys[2]].startswith("not valid JSON")
    assert errors[keys[3]] == 'not a CloudTrail log file: no "Records" list at the top level'
    assert errors[keys[4]] == "record 1: eventTime 'nope' is not an ISO 8601 time"
    assert QuarantinedObject.objects.get(key=keys[1]).size == len(complete) // 2
    assert TrailCursor.objects.get().last_key == last > first

    # A later run neither re-reads nor re-quarantines them.
    assert activity.activity_ingest().objects == 0
    assert set(QuarantinedObject.objects.values_list("attempts", flat=True)) == {1}

    # The truncated upload is re-delivered complete: a retry ingests it and resolves it (audited).
    simulator.put(
        keys[2],
        gzip.compress(
            orjson.dumps(
                {"Records": simulator.session_records(alice_cli, mint=False, reads=1, writes=0, denied=0)}
            )
        ),
    )
    retried = activity.quarantined_object_retry(obj=QuarantinedObject.objects.get(key=keys[2]), actor=staff)
    assert retried.resolved and retried.resolved_by == staff
    assert ActivityEvent.objects.count() == len(good) + len(later) + 2
    assert AuditEvent.objects.filter(action="quarantine.retried", object_id=str(retried.pk)).exists()
    # Retrying a still-broken one keeps it open, with the error and one more attempt.
    still = activity.quarantined_object_retry(obj=QuarantinedObject.objects.get(key=keys[0]), actor=staff)
    assert not still.resolved and still.attempts == 2 and still.error.startswith("not a valid gzip file")
    dismissed = activity.quarantined_object_resolve(obj=still, actor=staff)
    assert dismissed.resolved and AuditEvent.objects.filter(action="quarantine.dismissed").count() == 1
    # Retrying the file with a refused record, unchanged, keeps it open as it was (its other event stays stored).
    partial = activity.quarantined_object_retry(obj=QuarantinedObject.objects.get(key=keys[4]), actor=staff)
    assert not partial.resolved and partial.attempts == 2
    assert (partial.reason, partial.records_refused) == ("bad_records", 1)
    assert ActivityEvent.objects.count() == len(good) + len(later) + 2


def test_a_file_delivered_late_with_an_earlier_name_is_still_ingested(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    """CloudTrail may deliver a file whose name sorts before one already ingested (same minute, or a few minutes
    late): the cursor resumes `PORTE_ACTIVITY_LOOKBACK_SECONDS` before its newest file and skips what it has."""
    account = acme.partner.aws_account_id
    at = timezone.now().replace(second=0, microsecond=0)
    newest = simulator.write_log(account, simulator.session_records(alice_cli), at=at)
    assert activity.activity_ingest().objects == 1

    late_key = simulator.log_key(account, at - timedelta(minutes=4))
    assert late_key < newest
    late = simulator.session_records(alice_cli, mint=False, reads=2, writes=0, denied=0)
    simulator.put(late_key, simulator.encode(late))

    report = activity.activity_ingest()
    assert (report.objects, report.events_inserted) == (1, 2)  # the late file only; the newest is not re-read
    cursor = TrailCursor.objects.get()
    assert cursor.last_key == newest and late_key in cursor.recent_keys
    assert activity.activity_ingest().objects == 0


def test_no_organisation_means_nothing_to_ingest(local_aws) -> None:  # type: ignore[no-untyped-def]
    report = activity.activity_ingest()
    assert report.objects == 0 and not TrailCursor.objects.exists()
