"""CloudTrail log files → records: streamed gunzip with a size limit, then the documented record format.

A log file is gzipped JSON `{"Records": [...]}`; each record has at least `eventID` and `eventTime`. A file that is
not that is a `MalformedLog`, whose message is what staff see on the quarantined object. A record that is not one
(or that cannot be stored) costs only itself: it is a `Refusal`, and the file's other records are read.

Ingestion reads only the fields it stores or attributes by (`TrailRecord`, `read_document`): msgspec decodes a
file straight into them, skipping the rest of each record in C (the record itself stays in its kept file). A
file that decoding refuses (a lone surrogate, a NUL, text that is not UTF-8, a field of an unexpected type, a
record that is not one) is read as before, by orjson or the standard library into JSON objects
(`parse_records`), which `from_objects` turns into the same TrailRecords, refusing the faulty ones alone: the two
ways give the same facts.
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec
import orjson

# A CloudTrail log file is a few MB at most once decompressed; far more is a broken or hostile object.
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024
# The event times stored: CloudTrail's are recent, and anything far outside cannot be read back (see event_time).
EVENT_TIMES = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))
# Namespace for the rare eventID that is not a GUID (the stored id is then uuid5 of it; the record keeps it).
_EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-5d0c-4a8e-9a43-0c6b3e7a1f20")


class MalformedLog(ValueError):
    """The object is not a CloudTrail log file Porte can read; the message says what is wrong with it."""


def gunzip(chunks: Iterable[bytes], *, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress a gzip stream chunk by chunk (several members allowed); refuse a truncated or oversized one. The
    pieces are joined once at the end (none to join for a file read in one chunk): a log file is megabytes, and
    every copy of it counts per event."""
    pieces: list[bytes] = []
    size = 0
    decompressor = zlib.decompressobj(wbits=31)
    received = 0
    in_member = False
    try:
        for chunk in chunks:
            received += len(chunk)
            while chunk:
                in_member = True
                # Bounded output per call, so a small "gzip bomb" chunk cannot balloon before the check.
                piece = decompressor.decompress(chunk, limit + 1 - size)
                size += len(piece)
                if size > limit:
                    raise MalformedLog(f"decompresses to more than {limit // (1024 * 1024)} MB")
                if piece:
                    pieces.append(piece)
                if not decompressor.eof:
                    chunk = decompressor.unconsumed_tail
                    continue
                # End of one gzip member: whatever follows is the next member.
                in_member = False
                chunk = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
    except zlib.error as exc:
        raise MalformedLog(f"not a valid gzip file: {exc}") from None
    if received == 0:
        raise MalformedLog("empty object")
    if in_member:
        raise MalformedLog(f"truncated gzip file: the stream ends early (after {received} bytes)")
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class Refusal(NamedTuple):
    """A record of a log file that cannot be stored as an event: the file's other records are."""

    position: int  # the record's index in the file's Records
    reason: str


class Document(NamedTuple):
    records: list[Any]  # the file's Records, as the file has them (a refused record included, in its place)
    # Records that cannot be stored whatever their fields say (see `parse_document`); the others are not checked.
    refused: list[Refusal]


# --- what ingestion reads of a record ---------------------------------------------------------------------------


class SessionContext(msgspec.Struct, gc=False):
    sourceIdentity: str | None = None


class OnBehalfOf(msgspec.Struct, gc=False):
    identityStoreArn: str | None = None
    userId: str | None = None


class UserIdentity(msgspec.Struct, gc=False):
    type: str | None = None
    arn: str | None = None
    invokedBy: str | None = None
    accessKeyId: str | None = None
    accountId: str | None = None
    principalId: str | None = None
    userName: str | None = None
    identityProvider: str | None = None
    onBehalfOf: OnBehalfOf | None = None
    sessionContext: SessionContext | None = None


_NULL = msgspec.Raw(b"null")


class TrailRecord(msgspec.Struct, gc=False):
    """The fields of a CloudTrail record that ingestion stores or attributes by (CloudTrail's names). Texts are
    str or None and hold no NUL character (PostgreSQL's text cannot): decoding reads a file only when that holds
    for every one of them (JSON writes a NUL only as `\\u0000`), and `from_objects` makes it so for the others.
    The request and response stay undecoded until a rule or the attribution of a minting reads them
    (`json_value`)."""

    eventID: str
    eventTime: str
    eventSource: str | None = None
    eventName: str | None = None
    awsRegion: str | None = None
    recipientAccountId: str | None = None
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    errorCode: str | None = None
    errorMessage: str | None = None
    readOnly: Any = None
    userIdentity: UserIdentity | None = None
    requestParameters: msgspec.Raw = _NULL
    responseElements: msgspec.Raw = _NULL


class _LogFile(msgspec.Struct, gc=False):
    Records: list[TrailRecord]


_LOG_FILE = msgspec.json.Decoder(_LogFile)
# JSON's only way to write a NUL character. A regular expression finds it in half the time `in` takes on a log file:
# its search starts at each backslash (rare in CloudTrail's JSON), where `in` stops at every "0".
_ESCAPED_NUL = re.compile(rb"\\u0000")
# The fields `from_objects` reads as text.
_NOT_TEXT = ("eventID", "eventTime", "readOnly", "userIdentity", "requestParameters", "responseElements")
_TEXTS = tuple(f for f in TrailRecord.__struct_fields__ if f not in _NOT_TEXT)
_IDENTITY_TEXTS = tuple(
    f for f in UserIdentity.__struct_fields__ if f not in ("onBehalfOf", "sessionContext")
)


class TrailDocument(NamedTuple):
    records: list[TrailRecord | None]  # in the file's order; None in the place of a refused record
    refused: list[Refusal]  # by position


def read_document(data: bytes) -> TrailDocument:
    """The records of a decompressed log file as ingestion reads them. Raises MalformedLog for a file that is
    not a CloudTrail log file."""
    try:
        if not data.isascii():
            data.decode()  # what msgspec skips, it does not check is UTF-8; the file must be text throughout
        if _ESCAPED_NUL.search(data) is None:
            return TrailDocument(list(_LOG_FILE.decode(data).Records), [])
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec.ValidationError is a DecodeError
        pass
    document = parse_document(data)
    return from_objects(document.records, document.refused)


def from_objects(objects: list[Any], refused: Sequence[Refusal] = ()) -> TrailDocument:
    """Records parsed as JSON objects, as TrailRecords: a record at fault (`record_fault`) or already `refused`
    is None in its place and refused; an object where another type is expected reads as absent, any other
    value where text is expected as its text (NUL characters left out)."""
    reasons = {refusal.position: refusal.reason for refusal in refused}
    records: list[TrailRecord | None] = []
    refusals = []
    for position, obj in enumerate(objects):
        reason = reasons.get(position) or record_fault(obj)
        if reason:
            refusals.append(Refusal(position, reason))
            records.append(None)
            continue
        identity = obj.get("userIdentity")
        records.append(
            TrailRecord(
                eventID=obj["eventID"],
                eventTime=obj["eventTime"],
                readOnly=obj.get("readOnly"),
                userIdentity=_identity(identity) if isinstance(identity, dict) else None,
                requestParameters=_raw(obj.get("requestParameters")),
                responseElements=_raw(obj.get("responseElements")),
                **{name: text_of(obj.get(name)) for name in _TEXTS},
            )
        )
    return TrailDocument(records, refusals)


def _identity(obj: dict[str, Any]) -> UserIdentity:
    context, on_behalf = obj.get("sessionContext"), obj.get("onBehalfOf")
    return UserIdentity(
        sessionContext=(
            SessionContext(text_of(context.get("sourceIdentity"))) if isinstance(context, dict) else None
        ),
        onBehalfOf=(
            OnBehalfOf(text_of(on_behalf.get("identityStoreArn")), text_of(on_behalf.get("userId")))
            if isinstance(on_behalf, dict)
            else None
        ),
        **{name: text_of(obj.get(name)) for name in _IDENTITY_TEXTS},
    )


def text_of(value: Any) -> str | None:
    """A JSON value where text is expected, as text without NUL (None for null, an object or a list)."""
    if value is None or isinstance(value, (dict, list)):
        return None
    text = value if isinstance(value, str) else str(value)
    return text.replace("\x00", "") if "\x00" in text else text


def _raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


def json_value(raw: msgspec.Raw | Any) -> Any:
    """A TrailRecord's request or response as JSON values (a value already decoded as itself)."""
    if not isinstance(raw, msgspec.Raw):
        return raw
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None


# --- the records as the file has them ---------------------------------------------------------------------------


def parse_records(data: bytes) -> list[Any]:
    """The records of a decompressed log file, exactly as ingestion read them (`parse_document`): an event's
    position is its index here. A refused record is in its place, whatever it is."""
    return parse_document(data).records


def parse_document(data: bytes) -> Document:
    """The Records list of a decompressed log file, its records not yet checked (see `record_fault`).

    orjson reads nearly every file. It refuses a whole document for one string it cannot hold as UTF-8 (a lone
    surrogate escape such as `"\\ud800"`, which JSON allows and some clients send in a user agent): then the
    standard library's parser reads it, and the records holding such a string are refused, alone. A document
    neither reads is not JSON."""
    lenient = False
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        document, lenient = _parse_leniently(data, exc), True
    if not isinstance(document, dict) or not isinstance(document.get("Records"), list):
        raise MalformedLog('not a CloudTrail log file: no "Records" list at the top level')
    records: list[Any] = document["Records"]
    if not lenient:
        return Document(records, [])
    return Document(
        records, [Refusal(i, why) for i, record in enumerate(records) if (why := _unstorable(record))]
    )


def _parse_leniently(data: bytes, error: orjson.JSONDecodeError) -> Any:
    """The document by the standard library's parser, kept as strict as orjson but for lone surrogates: NaN and
    Infinity, which orjson refuses, are refused here too. Raises MalformedLog with orjson's error."""
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError (not UTF-8) is a ValueError
        raise MalformedLog(f"not valid JSON: {error}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unstorable(record: Any) -> str:
    """Why a record read leniently cannot be stored ("" if it can): a string that is not Unicode text (a lone
    surrogate) can be neither sent to the database (which takes UTF-8) nor shown. Checked by writing the record
    back as UTF-8, as it would be shown."""
    try:
        json.dumps(record, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return "lone surrogate in a string"
    except RecursionError:
        return "nested too deeply"
    return ""


def record_fault(record: Any) -> str:
    """What makes a record not one ("" if nothing): an object with a textual eventID and eventTime."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if not isinstance(record.get("eventID"), str) or not isinstance(record.get("eventTime"), str):
        return "no eventID or eventTime"
    return ""


# Staff read the first few refusals of a file; the count says how many there are.
REFUSALS_SHOWN = 5


def refusals_text(refused: Sequence[Refusal]) -> str:
    """The first few refusals, by position: `record 3: lone surrogate in a string; record 7: ...`."""
    shown = "; ".join(f"record {r.position}: {r.reason}" for r in refused[:REFUSALS_SHOWN])
    more = len(refused) - REFUSALS_SHOWN
    return f"{shown}; and {more} more" if more > 0 else shown


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def event_uuid(event_id: str) -> str:
    """The stored event id, as canonical UUID text (a GUID as such; anything else as uuid5 of it)."""
    if _GUID.fullmatch(event_id):
        return event_id.lower()
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, event_id))


def event_time(value: str) -> datetime:
    """The eventTime of a record. Raises MalformedLog (the reason its record is refused), also for a time outside
    EVENT_TIMES: PostgreSQL would store it, but Python could not read it back (a year 0 or 10000 in UTC, from a
    far offset), and each page showing it, the lag banner's newest event first, would fail."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedLog(f"eventTime {value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise MalformedLog(f"eventTime {value[:40]!r} has no time zone")
    try:
        in_range = EVENT_TIMES[0] <= parsed.astimezone(UTC) < EVENT_TIMES[1]
    except OverflowError:
        in_range = False
    if not in_range:
        raise MalformedLog(
            f"eventTime {value[:40]!r} is not between {EVENT_TIMES[0].year} and {EVENT_TIMES[1].year - 1}"
        )
    return parsed
