"""Loading a batch of log files: texts with tabs, backslashes, newlines, NUL and non-ASCII stored exactly;
eventIDs repeated within a file and across the files of one batch stored once (the first record wins); a bad
file in the middle of a batch quarantined alone; `load_log` answering with exactly the rows that were new to the
database; a file naming keys first seen mid-batch attributed all the same.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import timedelta

import orjson
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from activity import services as activity
from activity.attribution import COLUMNS, Attributor
from activity.loading import LogData, load_files, load_log
from activity.models import ActivityEvent, QuarantinedObject, TrailCursor, TrailFile

pytestmark = [pytest.mark.django_db, pytest.mark.aws]

EVENT_ID, EVENT_NAME = COLUMNS.index("event_id"), COLUMNS.index("event_name")


def test_odd_texts_are_stored_exactly(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    records = simulator.session_records(alice_cli, mint=False, reads=7, writes=0, denied=0)
    odd = {
        "eventName": "Describe\tInstances",
        "userAgent": "aws-cli/2 C:\\Users\\ops\\N",
        "errorCode": "\\N",  # COPY's NULL in its text format
        "errorMessage": "line one\nline two\r\n",
        "sourceIPAddress": "None",
        "awsRegion": "eu-west-\x001",  # PostgreSQL keeps no NUL in a text: dropped
        "eventType": "AwsApiCall é ✓ 🙂",
    }
    for record, (field, value) in zip(records, odd.items(), strict=True):
        record[field] = value
    simulator.write_log(acme.partner.aws_account_id, records, at=timezone.now())

    report = activity.activity_ingest()

    assert report.events_inserted == len(records) and report.quarantined == 0
    stored = {str(e.event_id): e for e in ActivityEvent.objects.all()}
    assert stored[records[0]["eventID"]].event_name == "Describe\tInstances"
    assert stored[records[1]["eventID"]].user_agent == "aws-cli/2 C:\\Users\\ops\\N"
    assert stored[records[2]["eventID"]].error_code == "\\N"
    assert stored[records[3]["eventID"]].error_message == "line one\nline two\r\n"
    assert stored[records[4]["eventID"]].source_ip == "None"
    assert stored[records[5]["eventID"]].aws_region == "eu-west-1"
    assert stored[records[6]["eventID"]].event_type == "AwsApiCall é ✓ 🙂"
    # Every event of the file is still attributed as before.
    assert all(e.credential_id == alice_cli.pk and e.is_porte_session for e in stored.values())


def test_events_repeated_within_and_across_files_of_a_batch_are_stored_once(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli
) -> None:
    account = acme.partner.aws_account_id
    base = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=20)
    first = simulator.session_records(alice_cli, reads=3, writes=1, denied=0)
    # CloudTrail may deliver an event twice: again in the same file, and in a later file.
    second = [
        first[1] | {"eventName": "SeenAgain"},
        *simulator.session_records(alice_cli, mint=False, reads=2, writes=0, denied=0),
    ]
    second.append(second[1] | {"eventName": "RepeatedInFile"})
    keys = [
        simulator.write_log(account, first, at=base),
        simulator.put(simulator.log_key(account, base + timedelta(minutes=1)), b"not gzip at all"),
        simulator.write_log(account, second, at=base + timedelta(minutes=2)),
    ]

    report = activity.activity_ingest()  # the three files are one batch (one transaction)

    unique = {r["eventID"] for r in first + second}
    assert (report.objects, report.quarantined) == (3, 1)
    assert report.events_read == len(first) + len(second)
    assert report.events_inserted == len(unique) == ActivityEvent.objects.count()
    assert QuarantinedObject.objects.get().key == keys[1]
    assert TrailCursor.objects.get().last_key == keys[2]
    # The first record of an eventID wins: its file, its position, its fields.
    again = ActivityEvent.objects.get(event_id=first[1]["eventID"])
    assert again.event_name == first[1]["eventName"] and again.record == first[1]
    repeated = ActivityEvent.objects.get(event_id=second[1]["eventID"])
    assert repeated.event_name == second[1]["eventName"] and repeated.position == 1
    assert TrailFile.objects.count() == 2


def test_load_log_returns_the_rows_new_to_the_database(simulator, acme, alice_cli) -> None:  # type: ignore[no-untyped-def]
    account = acme.partner.aws_account_id
    records = simulator.session_records(alice_cli, reads=3, writes=1, denied=1)
    extra = simulator.session_records(alice_cli, mint=False, reads=2, writes=0, denied=0)
    mixed = [extra[0], records[2], extra[1], extra[0] | {"eventName": "Duplicate"}]
    attributor = Attributor()

    def load(key: str, recs: list[dict]) -> list[tuple]:  # type: ignore[type-arg]
        data = orjson.dumps({"Records": recs})
        with transaction.atomic():
            loaded = load_log(bucket="b", key=key, content=key.encode(), data=data, attributor=attributor)
        assert loaded.events == len(recs)
        return loaded.inserted

    inserted = load("one", records)
    assert [row[EVENT_ID] for row in inserted] == [r["eventID"] for r in records]
    assert inserted == attributor.rows(records, path_account=account)
    # The same file again: nothing new, nothing returned, and the file is not kept twice. It is not even read: its
    # stored bytes are the proof that its events were stored (here the decompressed text given is not JSON).
    assert load("one", records) == []
    assert TrailFile.objects.filter(key="one").count() == 1
    with transaction.atomic():
        again = load_log(bucket="b", key="one", content=b"one", data=b"not json", attributor=attributor)
    assert (again.events, again.inserted, again.error) == (len(records), [], None)
    # A file mixing new and stored events: only the new ones, in the file's order, the first of a repeat.
    new = load("two", mixed)
    assert [row[EVENT_ID] for row in new] == [extra[0]["eventID"], extra[1]["eventID"]]
    assert new[0][EVENT_NAME] == extra[0]["eventName"]
    assert ActivityEvent.objects.count() == len(records) + 2
    # A file none of whose events is new is not kept at all.
    assert load("three", [records[0]]) == [] and not TrailFile.objects.filter(key="three").exists()
    assert all(uuid.UUID(row[EVENT_ID]) for row in new)


def test_a_record_that_is_not_one_quarantines_its_file_with_the_first_fault(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli
) -> None:
    account = acme.partner.aws_account_id
    base = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=20)
    good = simulator.session_records(alice_cli, mint=False, reads=3, writes=0, denied=0)
    faulty = {
        "record 1 is not a JSON object": [good[0], "text", good[1]],
        "record 0 has no eventID or eventTime": [{k: v for k, v in good[0].items() if k != "eventID"}],
        "record 1 has no eventID or eventTime": [good[0], good[1] | {"eventTime": 1700000000}],
        # Both faults: the record that is not one is reported, as if every record had been checked first.
        "record 2 is not a JSON object": [good[0] | {"eventTime": "nope"}, good[1], [good[2]]],
    }
    keys = {
        simulator.write_log(account, records, at=base + timedelta(minutes=n)): error  # type: ignore[arg-type]
        for n, (error, records) in enumerate(faulty.items())
    }
    simulator.write_log(account, good, at=base + timedelta(minutes=10))

    report = activity.activity_ingest()

    assert (report.objects, report.quarantined, report.events_inserted) == (5, 4, len(good))
    assert dict(QuarantinedObject.objects.values_list("key", "error")) == keys


def test_a_batch_attributes_each_file_even_when_it_names_keys_first_seen_mid_batch(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli, alice_console
) -> None:
    """The next file is prepared while the database inserts the current one, without lookups; a file naming a key
    the run has not looked up yet is finished once the database is free. A replayed file adds nothing, and is not
    kept."""
    cli = simulator.session_records(alice_cli, reads=3, writes=1, denied=1)
    console = simulator.session_records(alice_console, mint=False, reads=2, writes=1, denied=0)
    documents = {
        name: orjson.dumps({"Records": records}) for name, records in (("cli", cli), ("console", console))
    }
    documents["cli-again"] = documents["cli"]
    logs = [LogData(name, gzip.compress(data), data) for name, data in documents.items()]

    with transaction.atomic():
        loaded = load_files(bucket="b", logs=logs, attributor=Attributor())

    assert [(result.key, result.events, len(result.inserted)) for result in loaded] == [
        ("cli", len(cli), len(cli)),
        ("console", len(console), len(console)),
        ("cli-again", len(cli), 0),
    ]
    stored = ActivityEvent.objects.filter(event_id__in=[r["eventID"] for r in console])
    assert stored.count() == len(console)
    # Console calls are signed with keys the console derives: attributed by Porte's role session name.
    assert {(e.grant_id, e.user_id, e.is_porte_session) for e in stored} == {
        (alice_console.grant_id, alice_console.grant.user_id, True)
    }
    assert ActivityEvent.objects.filter(credential_id=alice_cli.pk).count() == len(cli)
    assert sorted(TrailFile.objects.values_list("key", flat=True)) == ["cli", "console"]
    assert [e.record for e in stored.order_by("position")] == console


def test_the_fast_path_refuses_an_event_stored_before_and_the_careful_path_keeps_only_new_ones(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli
) -> None:
    """Ingestion loads new files on the fast path (straight COPY, no savepoint per file); CloudTrail's rare second
    delivery of an event in another file makes it fail, and the batch is loaded again on the careful path."""
    if connection.vendor != "postgresql":
        pytest.fail("the fast path is PostgreSQL's COPY (run the suite with DATABASE_URL=postgres://...)")
    records = simulator.session_records(alice_cli, reads=3, writes=0, denied=0)
    first = orjson.dumps({"Records": records[:3]})
    overlapping = orjson.dumps({"Records": records[2:]})
    with transaction.atomic():
        load_files(bucket="b", logs=[LogData("first", gzip.compress(first), first)], attributor=Attributor())
    second = [LogData("second", gzip.compress(overlapping), overlapping)]

    with pytest.raises(IntegrityError), transaction.atomic():
        load_files(bucket="b", logs=second, attributor=Attributor(), fresh=True)
    with transaction.atomic():
        (loaded,) = load_files(bucket="b", logs=second, attributor=Attributor())

    assert [row[EVENT_ID] for row in loaded.inserted] == [r["eventID"] for r in records[3:]]
    assert ActivityEvent.objects.count() == len(records)
