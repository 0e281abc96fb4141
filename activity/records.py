"""CloudTrail log files → records: streamed gunzip with a size limit, then the documented record format.

A log file is gzipped JSON `{"Records": [...]}`; each record has at least `eventID` and `eventTime`. Anything else
is a `MalformedLog`, whose message is what staff see on the quarantined object.
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

# A CloudTrail log file is a few MB at most once decompressed; far more is a broken or hostile object.
MAX_DECOMPRESSED_BYTES = 512 * 1024 * 1024
# Namespace for the rare eventID that is not a GUID (the stored id is then uuid5 of it; the record keeps it).
_EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-5d0c-4a8e-9a43-0c6b3e7a1f20")


class MalformedLog(ValueError):
    """The object is not a CloudTrail log file Porte can read; the message says what is wrong with it."""


def gunzip(chunks: Iterable[bytes], *, limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress a gzip stream chunk by chunk (several members allowed); refuse a truncated or oversized one."""
    out = bytearray()
    decompressor = zlib.decompressobj(wbits=31)
    received = 0
    in_member = False
    try:
        for chunk in chunks:
            received += len(chunk)
            while chunk:
                in_member = True
                # Bounded output per call, so a small "gzip bomb" chunk cannot balloon before the check.
                out += decompressor.decompress(chunk, limit + 1 - len(out))
                if len(out) > limit:
                    raise MalformedLog(f"decompresses to more than {limit // (1024 * 1024)} MB")
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
    return bytes(out)


def parse_records(data: bytes) -> list[dict[str, Any]]:
    """The records of a decompressed log file, each checked for the fields Porte keys on."""
    records = parse_document(data)
    check_records(records)
    return records


def parse_document(data: bytes) -> list[Any]:
    """The Records list of a decompressed log file, its records not yet checked (see `check_records`)."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedLog(f"not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("Records"), list):
        raise MalformedLog('not a CloudTrail log file: no "Records" list at the top level')
    records: list[Any] = document["Records"]
    return records


def check_records(records: list[Any]) -> None:
    """Raise MalformedLog for the first record that is not an object with a textual eventID and eventTime."""
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise MalformedLog(f"record {index} is not a JSON object")
        if not isinstance(record.get("eventID"), str) or not isinstance(record.get("eventTime"), str):
            raise MalformedLog(f"record {index} has no eventID or eventTime")


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def event_uuid(event_id: str) -> str:
    """The stored event id, as canonical UUID text (a GUID as such; anything else as uuid5 of it)."""
    if _GUID.fullmatch(event_id):
        return event_id.lower()
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, event_id))


def event_time(value: str, index: int) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedLog(f"record {index}: eventTime {value[:40]!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise MalformedLog(f"record {index}: eventTime {value[:40]!r} has no time zone")
    return parsed
