"""Loading a batch of log files: texts with tabs, backslashes, newlines, NUL and non-ASCII stored exactly;
events repeated within a file and across the files of one batch stored once (the first record wins), an event
being its (eventTime, eventID) as in the table; a bad file in the middle of a batch quarantined alone, and a bad
record refused alone (its file's other records stored, the refusals recorded); `load_log` answering with exactly
the rows that were new to the database; a file naming keys first seen mid-batch attributed all the same.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from activity import services as activity
from activity import store
from activity.attribution import COLUMNS, Attributor
from activity.loading import Loaded, LogData, load_files, load_log
from activity.models import ActivityEvent, Alert, QuarantinedObject, TrailCursor, TrailFile
from activity.quarantine import record_refusals
from activity.records import Refusal, refusals_text

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
    assert stored[records[6]["eventID"]].record["eventType"] == "AwsApiCall é ✓ 🙂"
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


def _document(records: list[Any]) -> bytes:
    """A log file's JSON. orjson writes no lone surrogate: a string `<lone surrogate>` is written as the escape
    `\\ud800`, as a client's user agent can have it (JSON allows it; UTF-8 cannot hold it)."""
    return orjson.dumps({"Records": records}).replace(b"<lone surrogate>", b"\\ud800")


def _load(key: str, data: bytes, *, fresh: bool = False) -> Loaded:
    with transaction.atomic():
        (loaded,) = load_files(
            bucket="b", logs=[LogData(key, gzip.compress(data), data)], attributor=Attributor(), fresh=fresh
        )
    return loaded


def test_a_bad_record_costs_only_itself_and_its_file_is_recorded_with_the_refusals(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli
) -> None:
    """A record with a lone surrogate, one that is not an object, one without an eventID, one whose time is not a
    time: each is refused alone, by its position; the file's other records are stored at theirs (the detail page
    reads the record there), attributed and judged by the alert rules as usual."""
    account = acme.partner.aws_account_id
    good = simulator.session_records(alice_cli, mint=False, reads=5, writes=0, denied=0)
    ingress = simulator.record(
        account,
        simulator.porte_identity(alice_cli),
        "ec2.amazonaws.com",
        "AuthorizeSecurityGroupIngress",
        at=timezone.now(),
        read_only=False,
        request={
            "groupId": "sg-0123456789abcdef0",
            "ipPermissions": {
                "items": [{"ipProtocol": "tcp", "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}}]
            },
        },
    )
    records: list[Any] = [
        good[0],
        good[1] | {"userAgent": "aws-cli/2 <lone surrogate>"},
        "text",
        {k: v for k, v in good[2].items() if k != "eventID"},
        ingress,
        good[3] | {"eventTime": "nope"},
        good[4],
        good[2],
    ]
    key = simulator.log_key(account, timezone.now())
    data = _document(records)

    loaded = _load(key, data)

    assert list(loaded.refused) == [
        Refusal(1, "lone surrogate in a string"),
        Refusal(2, "not a JSON object"),
        Refusal(3, "no eventID or eventTime"),
        Refusal(5, "eventTime 'nope' is not an ISO 8601 time"),
    ]
    kept = [0, 4, 6, 7]
    assert loaded.error is None and loaded.events == len(kept)
    assert [row[EVENT_ID] for row in loaded.inserted] == [records[p]["eventID"] for p in kept]
    stored = ActivityEvent.objects.order_by("position")
    assert [(e.position, str(e.event_id)) for e in stored] == [(p, records[p]["eventID"]) for p in kept]
    assert all(e.credential_id == alice_cli.pk and e.is_porte_session for e in stored)
    # Each event's record is read back at its position, the file parsed as ingestion parsed it.
    assert [e.record for e in stored] == [records[p] for p in kept]
    assert TrailFile.objects.get().events == len(kept)
    # The rules read each stored event's own record: the ingress opened to the world is found.
    (alert,) = Alert.objects.filter(rule=Alert.Rule.SENSITIVE_ACTION)
    assert alert.event_ids == [ingress["eventID"]]

    # The caller records the refusals (ingestion, in the transaction that stored the rest).
    with transaction.atomic():
        obj = record_refusals(bucket="b", key=key, size=len(data), refused=loaded.refused)
    assert (obj.reason, obj.records_refused, obj.size, obj.attempts, obj.resolved) == (
        QuarantinedObject.Reason.BAD_RECORDS,
        4,
        len(data),
        1,
        False,
    )
    assert obj.error == (
        "record 1: lone surrogate in a string; record 2: not a JSON object; record 3: no eventID or eventTime; "
        "record 5: eventTime 'nope' is not an ISO 8601 time"
    )
    # Recorded again (the file read again, after staff resolved it): open again, one more attempt.
    QuarantinedObject.objects.filter(pk=obj.pk).update(resolved=True, resolved_at=timezone.now())
    again = record_refusals(bucket="b", key=key, size=len(data), refused=loaded.refused[:1])
    assert (again.pk, again.attempts, again.resolved, again.resolved_at, again.records_refused) == (
        obj.pk,
        2,
        False,
        None,
        1,
    )
    assert again.error == "record 1: lone surrogate in a string"


def test_a_file_whose_records_are_all_refused_is_not_kept_and_an_unreadable_one_is_refused_whole(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli
) -> None:
    good = simulator.session_records(alice_cli, mint=False, reads=7, writes=0, denied=0)
    every = [record | {"sourceIPAddress": "<lone surrogate>"} for record in good]

    refused = _load("all-refused", _document(every), fresh=True)

    assert (refused.events, refused.inserted, refused.error) == (0, [], None)
    assert [r.position for r in refused.refused] == list(range(len(good)))
    assert refusals_text(refused.refused).endswith("record 4: lone surrogate in a string; and 2 more")
    assert not TrailFile.objects.exists() and not ActivityEvent.objects.exists()

    # Not JSON, or no Records list: the whole file is unreadable, as before (its other records are not read).
    broken = _document(good)[:-40]
    assert str(_load("truncated", broken).error).startswith("not valid JSON")
    assert str(_load("no-records", b'{"Records": {"not": "a list"}}').error) == (
        'not a CloudTrail log file: no "Records" list at the top level'
    )
    with_nan = _load("nan", _document(good[:1]).replace(b'"readOnly":true', b'"readOnly":NaN'))
    assert str(with_nan.error).startswith("not valid JSON") and not with_nan.refused
    assert not ActivityEvent.objects.exists()


# --- the key within a file and across files: (eventTime, eventID), as the table's ----------------------------------


def test_within_a_file_and_across_files_an_event_is_its_time_and_id(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli
) -> None:
    """The same eventID at two times is two events, within a file as across files (the table's key); the same
    time and id twice is one, the first record."""
    records = simulator.session_records(alice_cli, mint=False, reads=2, writes=0, denied=0)
    later = records[0] | {"eventTime": "2030-01-01T00:00:00Z", "eventName": "Later"}
    first_file = [records[0], later, records[1], records[1] | {"eventName": "Again"}]

    # Straight COPY (the fast path): a repeat left in would fail it on the key.
    one = _load("one", orjson.dumps({"Records": first_file}), fresh=True)

    assert [(row[EVENT_ID], row[EVENT_NAME]) for row in one.inserted] == [
        (records[0]["eventID"], records[0]["eventName"]),
        (records[0]["eventID"], "Later"),
        (records[1]["eventID"], records[1]["eventName"]),
    ]
    assert ActivityEvent.objects.filter(event_id=records[0]["eventID"]).count() == 2
    # Another file: the stored (time, id) pairs are not new, the same id at a third time is.
    third = records[0] | {"eventTime": "2031-01-01T00:00:00Z", "eventName": "Third"}
    two = _load("two", orjson.dumps({"Records": [later, third, records[1]]}))
    assert [(row[EVENT_ID], row[EVENT_NAME]) for row in two.inserted] == [(records[0]["eventID"], "Third")]
    assert ActivityEvent.objects.filter(event_id=records[0]["eventID"]).count() == 3
    assert ActivityEvent.objects.get(event_id=records[1]["eventID"]).event_name == records[1]["eventName"]


def test_the_loader_without_copy_keys_events_as_the_table_does(  # type: ignore[no-untyped-def]
    simulator, acme, alice_cli
) -> None:
    """`store.bulk_insert` (SQLite's path, run here on this database): rows by position, an empty row (a refused
    record) never stored, an event repeated in the file stored once, and what is stored compared on
    (eventTime, eventID)."""
    records = simulator.session_records(alice_cli, mint=False, reads=2, writes=0, denied=0)
    later = records[0] | {"eventTime": "2030-01-01T00:00:00Z"}
    a, a_later, b = Attributor().rows([records[0], later, records[1]])

    assert store.bulk_insert([a, (), a_later, b, b], file_id=7) == [0, 2, 3]
    stored = ActivityEvent.objects.order_by("position")
    assert [(e.position, e.file_id, str(e.event_id)) for e in stored] == [
        (0, 7, records[0]["eventID"]),
        (2, 7, records[0]["eventID"]),
        (3, 7, records[1]["eventID"]),
    ]
    third = Attributor().rows([records[0] | {"eventTime": "2031-01-01T00:00:00Z"}])[0]
    assert store.bulk_insert([a_later, third, b], file_id=8) == [1]
    assert ActivityEvent.objects.filter(file_id=8).get().event_time.year == 2031


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
    assert ActivityEvent.objects.filter(context__credential_id=alice_cli.pk).count() == len(cli)
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
