"""Reading a log file's records, without the database. Ingestion decodes the fields it reads with msgspec
(`read_document`); a file that decoding refuses is read as JSON objects: orjson reads the file, and only when it
refuses the whole document does the standard library's parser read it, as strictly but for lone surrogates, whose
records alone are refused. Each record that is not one (not an object, no eventID or eventTime, a time that is
not a time) is refused by its position; the others are read, in order, at the same positions as the detail page
reads them. Both ways give the same facts for the same records.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import orjson
import pytest

from activity import records as records_module
from activity.attribution import COLUMNS, read_facts
from activity.records import (
    EVENT_TIMES,
    REFUSALS_SHOWN,
    MalformedLog,
    Refusal,
    event_time,
    from_objects,
    parse_document,
    parse_records,
    read_document,
    refusals_text,
)

EVENT_ID = COLUMNS.index("event_id")


def _record(**fields: Any) -> dict[str, Any]:
    return {
        "eventVersion": "1.10",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAJ45Q7YFFAREXAMPLE",
            "arn": "arn:aws:iam::123456789012:user/Alice",
            "accountId": "123456789012",
            "userName": "Alice",
        },
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "aws-cli/2.17.40",
        "eventID": str(uuid.uuid4()),
        "readOnly": True,
        "recipientAccountId": "123456789012",
        **fields,
    }


def _json(records: list[Any]) -> bytes:
    """orjson writes no lone surrogate: `<high>` and `<low>` are written as the escapes of half a pair."""
    text = orjson.dumps({"Records": records})
    return text.replace(b"<high>", b"\\ud800").replace(b"<low>", b"\\udc00")


def test_orjson_reads_a_file_and_nothing_is_refused() -> None:
    records = [_record(), _record(userAgent="emoji \\ud83d\\ude42 ok")]
    data = orjson.dumps({"Records": records}).replace(b"\\\\ud83d\\\\ude42", b"\\ud83d\\ude42")

    document = parse_document(data)

    assert document.refused == []
    assert document.records[1]["userAgent"] == "emoji 🙂 ok"  # a whole surrogate pair is a character


def test_a_lone_surrogate_refuses_its_record_only() -> None:
    records = [
        _record(),
        _record(userAgent="Mozilla <high> broken"),
        _record(),
        _record(requestParameters={"key <low>": 1}),  # in a name too
        _record(userAgent="fine \\u00e9"),
    ]
    data = _json(records)

    document = parse_document(data)

    assert document.refused == [
        Refusal(1, "lone surrogate in a string"),
        Refusal(3, "lone surrogate in a string"),
    ]
    # The records as the file has them, each at its position: the same list the detail page reads.
    assert len(document.records) == len(records)
    assert [r["eventID"] for r in document.records] == [r["eventID"] for r in records]
    assert document.records[1]["userAgent"] == "Mozilla \ud800 broken"
    assert parse_records(data) == document.records
    facts, refused = read_facts(read_document(data))
    assert refused == document.refused
    assert [f[EVENT_ID] for f in facts] == [records[p]["eventID"] for p in (0, 2, 4)]


@pytest.mark.parametrize(
    "data",
    [
        b'{"Records": [NaN]}',
        b'{"Records": [{"n": -Infinity}]}',
        b'{"Records": ["\xff\xfe"]}',  # not UTF-8
        b'{"Records": []} trailing',
        b'{"Records": ["\\ud800"',  # a lone surrogate, and truncated
    ],
)
def test_the_lenient_parse_is_as_strict_as_orjson_but_for_lone_surrogates(data: bytes) -> None:
    with pytest.raises(MalformedLog) as raised:
        parse_document(data)
    with pytest.raises(MalformedLog) as read:
        read_document(data)
    assert str(read.value) == str(raised.value)
    with pytest.raises(orjson.JSONDecodeError) as original:
        orjson.loads(data)
    assert str(raised.value) == f"not valid JSON: {original.value}"  # orjson's own error, as before


def test_a_file_that_is_no_log_file_is_refused_whole() -> None:
    for data in (b'{"Records": {"not": "a list"}}', b'["\\ud800"]', b'{"records": []}'):
        with pytest.raises(MalformedLog, match='no "Records" list at the top level'):
            parse_document(data)
        with pytest.raises(MalformedLog, match='no "Records" list at the top level'):
            read_document(data)


def test_each_record_that_is_not_one_is_refused_and_the_others_read_in_order() -> None:
    records: list[Any] = [
        _record(),
        "text",
        [_record()],
        {k: v for k, v in _record().items() if k != "eventID"},
        _record(eventTime=1700000000),
        _record(eventTime="nope"),
        _record(eventTime="2024-05-01T12:00:00"),
        _record(eventID=42),
        _record(eventTime="2024-05-01T12:00:01+02:00"),
        # PostgreSQL stores these; Python cannot read them back (year 0 and 10000 in UTC), nor is 1969 CloudTrail's.
        _record(eventTime="0001-01-01T00:00:00+01:00"),
        _record(eventTime="9999-12-31T23:59:59-14:00"),
        _record(eventTime="1969-12-31T23:59:59Z"),
    ]

    facts, refused = read_facts(from_objects(records), path_account="123456789012")
    # The same file read as ingestion reads it (decoding refuses it: then the JSON objects are read).
    assert read_facts(read_document(orjson.dumps({"Records": records})), path_account="123456789012") == (
        facts,
        refused,
    )

    assert refused == [
        Refusal(1, "not a JSON object"),
        Refusal(2, "not a JSON object"),
        Refusal(3, "no eventID or eventTime"),
        Refusal(4, "no eventID or eventTime"),
        Refusal(5, "eventTime 'nope' is not an ISO 8601 time"),
        Refusal(6, "eventTime '2024-05-01T12:00:00' has no time zone"),
        Refusal(7, "no eventID or eventTime"),
        Refusal(9, "eventTime '0001-01-01T00:00:00+01:00' is not between 1970 and 8999"),
        Refusal(10, "eventTime '9999-12-31T23:59:59-14:00' is not between 1970 and 8999"),
        Refusal(11, "eventTime '1969-12-31T23:59:59Z' is not between 1970 and 8999"),
    ]
    assert [f[EVENT_ID] for f in facts] == [records[0]["eventID"], records[8]["eventID"]]
    # The same records, all good: the fast path, nothing refused.
    good = [records[0], records[8]]
    assert read_facts(from_objects(good), path_account="123456789012") == (facts, [])


def test_the_refusals_name_the_first_few_and_count_the_rest() -> None:
    refused = [Refusal(p, "no eventID or eventTime") for p in range(3, 3 + REFUSALS_SHOWN + 4)]
    text = refusals_text(refused)
    assert text.startswith("record 3: no eventID or eventTime; record 4: no eventID or eventTime; ")
    assert text.endswith(f"record {3 + REFUSALS_SHOWN - 1}: no eventID or eventTime; and 4 more")
    assert refusals_text(refused[:1]) == "record 3: no eventID or eventTime"
    with pytest.raises(MalformedLog, match="is not an ISO 8601 time"):
        event_time("yesterday")


def test_event_times_are_stored_only_where_they_can_be_read_back() -> None:
    earliest, end = EVENT_TIMES
    assert event_time("1970-01-01T00:00:00Z") == earliest
    assert event_time("8999-12-31T23:59:59.999999Z") == end - timedelta(microseconds=1)
    # Read as UTC: an offset moves a time across either end.
    assert event_time("1970-01-01T00:30:00+00:30") == earliest
    for value in ("9000-01-01T00:00:00Z", "1970-01-01T00:29:59+00:30", "0001-01-01T00:00:00+00:01"):
        with pytest.raises(MalformedLog, match="is not between 1970 and 8999"):
            event_time(value)


# --- the two ways of reading agree --------------------------------------------------------------------------------

_IDENTITIES: list[Any] = [
    {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLE:porte-g12-1a2b3c4d",
        "arn": "arn:aws:sts::123456789012:assumed-role/porte-dev/porte-g12-1a2b3c4d",
        "accountId": "123456789012",
        "accessKeyId": "ASIAEXAMPLE1",
        "sessionContext": {
            "sourceIdentity": "porte-" + "ab" * 16,
            "attributes": {"mfaAuthenticated": "false"},
        },
    },
    {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
    {
        "type": "IdentityCenterUser",
        "accountId": "123456789012",
        "onBehalfOf": {
            "userId": "u-1",
            "identityStoreArn": "arn:aws:identitystore::123456789012:identitystore/d-1",
        },
        "credentialId": "cred",
    },
    {"type": "SAMLUser", "principalId": "p", "userName": "bob", "identityProvider": "idp-1"},
    {"type": "WebIdentityUser", "userName": "carol", "identityProvider": "accounts.example"},
    {"type": "AWSAccount", "accountId": "111122223333", "principalId": "AIDAEXAMPLE"},
    {"type": "Unknown", "userName": "dave"},
    {"type": "Root", "sessionContext": None, "onBehalfOf": None},
    None,
]


def _varied() -> list[dict[str, Any]]:
    records = [_record(userIdentity=identity) for identity in _IDENTITIES]
    records.append({k: v for k, v in _record().items() if k != "userIdentity"})
    records.append(
        _record(
            eventSource="sts.amazonaws.com",
            eventName="AssumeRole",
            requestParameters={
                "roleArn": "arn:aws:iam::123456789012:role/porte-dev",
                "sourceIdentity": "porte-x",
            },
            responseElements={"credentials": {"accessKeyId": "ASIAMINTED", "expiration": "soon"}},
            userIdentity={"type": "AssumedRole", "arn": "arn:aws:sts::999999999999:assumed-role/broker/b"},
        )
    )
    records.append(_record(readOnly="false", errorCode="AccessDenied", errorMessage="no " * 600))
    records.append(_record(userAgent="ünïcode 🙂", sourceIPAddress=None, requestParameters={"n": 10**30}))
    return records


def _reads_as_objects(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Files `read_document` had to read as JSON objects (decoding refused them), as they come."""
    seen: list[bytes] = []

    def parse(data: bytes) -> Any:
        seen.append(data)
        return parse_document(data)

    monkeypatch.setattr(records_module, "parse_document", parse)
    return seen


def test_decoding_and_json_objects_give_the_same_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    as_objects_read = _reads_as_objects(monkeypatch)
    records = _varied()
    # The standard library writes what orjson cannot (an integer past 64 bits), and UTF-8 as such.
    data = json.dumps({"Records": records}, ensure_ascii=False).encode()
    decoded = read_facts(read_document(data), path_account="123456789012")
    assert as_objects_read == []  # decoded: every field of the expected type
    as_objects = read_facts(from_objects(parse_records(data)), path_account="123456789012")
    assert decoded == as_objects
    facts, refused = decoded
    assert refused == [] and len(facts) == len(records)


def test_a_field_of_an_unexpected_type_costs_the_file_its_fast_reading_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    as_objects_read = _reads_as_objects(monkeypatch)
    records = _varied()
    odd = [
        *records,
        _record(userIdentity={"type": "IAMUser", "sessionContext": "not an object"}),
        _record(userIdentity=["not", "an", "object"]),
        _record(
            userIdentity={
                "type": "IAMUser",
                "arn": "arn:aws:iam::123456789012:user/x\x00y",
                "accessKeyId": 42,
            }
        ),
        _record(awsRegion=7, userAgent={"an": "object"}),
    ]
    data = json.dumps({"Records": odd}, ensure_ascii=False).encode()
    facts, refused = read_facts(read_document(data), path_account="123456789012")
    assert as_objects_read == [data] and refused == []
    expected, _ = read_facts(from_objects(records), path_account="123456789012")
    assert facts[: len(records)] == expected  # the other records read exactly as by decoding
    column = {
        name: COLUMNS.index(name) for name in ("principal_arn", "access_key_id", "aws_region", "user_agent")
    }
    no_context, not_an_identity, texts, region = facts[len(records) :]
    assert no_context[column["principal_arn"]] == "" and not_an_identity[column["principal_arn"]] == ""
    assert (
        texts[column["principal_arn"]] == "arn:aws:iam::123456789012:user/xy"
    )  # no NUL reaches the database
    assert texts[column["access_key_id"]] == "42"
    assert (region[column["aws_region"]], region[column["user_agent"]]) == ("7", "")


def test_gunzip_reads_chunks_and_members_and_refuses_what_is_not_a_whole_gzip_stream() -> None:
    import gzip

    from activity.records import gunzip

    body = json.dumps({"Records": [{"eventID": str(i)} for i in range(2000)]}).encode()
    packed = gzip.compress(body)
    assert gunzip([packed]) == body
    assert gunzip(packed[i : i + 7] for i in range(0, len(packed), 7)) == body  # tiny chunks
    assert gunzip([packed + gzip.compress(b"more")]) == body + b"more"  # two members, as gzip allows
    refusals = {
        "more than 0 MB": lambda: gunzip([packed], limit=len(body) - 1),
        "truncated": lambda: gunzip([packed[:-10]]),
        "empty object": lambda: gunzip([]),
        "not a valid gzip file": lambda: gunzip([b"plain text, not gzip"]),
    }
    for reason, read in refusals.items():
        with pytest.raises(MalformedLog, match=reason):
            read()
    assert gunzip([packed], limit=len(body)) == body  # exactly the limit is allowed
