"""CSV and JSON exports of the current filter: streamed while read by keyset (ExportRows), capped at
PORTE_ACTIVITY_EXPORT_MAX_EVENTS, the newest first; the file says when the cap cut it short."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson

from activity.rows import FIELDS, ExportRows
from portal.csv_export import SafeWriter


def truncation_notice(limit: int) -> str:
    return f"Export stopped at {limit:,} events (the newest first): narrow the filter to export the rest."


def csv_chunks(rows: ExportRows) -> Iterator[str]:
    buffer = io.StringIO()
    writer = SafeWriter(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(FIELDS)
    for n, row in enumerate(rows, 1):
        values = row.as_dict()
        writer.writerow(values[field] for field in FIELDS)
        if n % 500 == 0:
            yield flush()
    if rows.truncated:
        writer.writerow([truncation_notice(rows.limit)])
    yield flush()


def json_chunks(rows: ExportRows) -> Iterator[bytes]:
    yield b'{"events":['
    batch: list[bytes] = []
    first = True
    for row in rows:
        batch.append(orjson.dumps(row.as_dict()))
        if len(batch) == 500:
            yield (b"" if first else b",") + b",".join(batch)
            batch, first = [], False
    if batch:
        yield (b"" if first else b",") + b",".join(batch)
    notice = truncation_notice(rows.limit) if rows.truncated else None
    yield b'],"truncated":' + orjson.dumps(rows.truncated) + b',"limit":' + orjson.dumps(rows.limit)
    yield b',"notice":' + orjson.dumps(notice) + b"}"
