"""The near-real-time path: which trail log files an SQS message says were just delivered.

Three shapes are understood, as AWS sends them:
- an S3 event notification (`Records[].s3.bucket.name` and `.object.key`, the key URL-encoded), straight from the
  bucket to the queue;
- the same wrapped in an SNS envelope (`{"Type": "Notification", "Message": "<the S3 event as text>"}`), when the
  bucket notifies a topic the queue subscribes to;
- CloudTrail's own delivery notification through SNS (`{"s3Bucket": ..., "s3ObjectKey": [...]}`).

Only log files of the trail bucket under the organisation's trail root are taken: a message is a claim by whoever
could send it to the queue, so it can make Porte read a trail file sooner, never read anything else.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

from activity import trail


class Notice(NamedTuple):
    keys: list[str]  # trail log files to ingest, in the message's order
    ignored: int  # objects named that are not (another bucket, a digest, outside the trail root)


def notice(body: str, *, bucket: str, root: str) -> Notice | None:
    """The trail log files a message names, or None for a message that is no notification Porte knows (it is
    dropped: read again, it would be no better)."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("Type") == "Notification":
        try:
            message = json.loads(message.get("Message") or "")
        except ValueError:
            return None
    if not isinstance(message, dict):
        return None
    named = _s3_event(message) if "Records" in message else _cloudtrail_notice(message)
    if named is None:
        return None
    keys = [key for named_bucket, key in named if named_bucket == bucket and _in_trail(key, root)]
    return Notice(list(dict.fromkeys(keys)), len(named) - len(keys))


def _s3_event(message: dict[str, Any]) -> list[tuple[str, str]] | None:
    records = message.get("Records")
    if not isinstance(records, list):
        return None
    named = []
    for record in records:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if not isinstance(s3, dict) or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        bucket, obj = s3.get("bucket"), s3.get("object")
        if isinstance(bucket, dict) and isinstance(obj, dict) and isinstance(obj.get("key"), str):
            named.append((str(bucket.get("name", "")), unquote_plus(obj["key"])))
    return named


def _cloudtrail_notice(message: dict[str, Any]) -> list[tuple[str, str]] | None:
    keys = message.get("s3ObjectKey")
    if not isinstance(keys, list) or not isinstance(message.get("s3Bucket"), str):
        return None  # also S3's "s3:TestEvent", sent when the notification is configured
    return [(message["s3Bucket"], key) for key in keys if isinstance(key, str)]


def _in_trail(key: str, root: str) -> bool:
    """`root`: the organisation's logs root (trail.logs_root, ending in "/")."""
    return key.startswith(root) and ".." not in key.split("/") and trail.is_log_file(key)
