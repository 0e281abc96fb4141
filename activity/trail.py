"""Where the log files are: an organisation trail's S3 layout, and the arithmetic of resuming in it.

    <trail prefix>/AWSLogs/<org id>/<account>/CloudTrail/<region>/YYYY/MM/DD/
        <account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<unique>.json.gz
    <trail prefix>/AWSLogs/<org id>/<account>/CloudTrail-Digest/...   (integrity digests: never ingested)

One cursor per `.../CloudTrail/<region>/` prefix: within it, names sort by delivery time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from django.conf import settings

from portal import aws

LOG_SUFFIX = ".json.gz"
_STAMP = re.compile(r"_(\d{8}T\d{4})Z_")
_DAY_AND_NAME = re.compile(r"\d{4}/\d{2}/\d{2}/[^/]+")
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TrailObject:
    key: str
    size: int | None  # as listed (None: named by a notification, not listed)


class TrailSource(Protocol):
    """A place holding an organisation trail's files. S3 in production; the benchmark also reads a directory."""

    bucket: str

    def prefixes(self) -> list[str]: ...

    def objects_after(self, prefix: str, start_after: str) -> Iterator[TrailObject]: ...

    def read(self, key: str) -> Iterable[bytes]: ...


def organization_id() -> str | None:
    """The organisation whose trail Porte reads; None when the management account has no organisation."""
    orgs = aws.management().organizations
    try:
        return str(orgs.describe_organization()["Organization"]["Id"])
    except aws.AwsNotFound:
        return None


def logs_root(org_id: str) -> str:
    prefix = settings.ACTIVITY_TRAIL_PREFIX
    return f"{prefix + '/' if prefix else ''}AWSLogs/{org_id}/"


class S3TrailSource:
    def __init__(self, *, bucket: str, root: str) -> None:
        self.bucket, self.root = bucket, root
        self._s3 = aws.management().s3

    def _children(self, prefix: str) -> list[str]:
        found: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        ):
            found += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        return found

    def prefixes(self) -> list[str]:
        """Every `<account>/CloudTrail/<region>/` prefix under the organisation's logs."""
        return [
            region
            for account in self._children(self.root)
            for region in self._children(f"{account}CloudTrail/")
        ]

    def objects_after(self, prefix: str, start_after: str) -> Iterator[TrailObject]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, StartAfter=start_after
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield TrailObject(item["Key"], int(item.get("Size", 0)))

    def read(self, key: str) -> Iterator[bytes]:
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            yield from body.iter_chunks(_CHUNK)
        finally:
            body.close()


def is_log_file(key: str) -> bool:
    return key.endswith(LOG_SUFFIX) and "/CloudTrail/" in key and "CloudTrail-Digest" not in key


def path_account(key: str) -> str:
    """The account a log file belongs to, from `.../<account>/CloudTrail/...`."""
    head, _, _ = key.partition("/CloudTrail/")
    return head.rsplit("/", 1)[-1]


def key_time(key: str) -> datetime | None:
    """The delivery time in a CloudTrail file name (to the minute), if the name follows CloudTrail's pattern."""
    match = _STAMP.search(key.rsplit("/", 1)[-1])
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)


def resume_after(prefix: str, last_key: str, lookback: timedelta) -> str:
    """The StartAfter of the next listing: `lookback` before the newest ingested file's time, in the same naming,
    so that files delivered late with earlier names are listed again (the cursor's recent keys skip the rest)."""
    rest = last_key[len(prefix) :] if last_key.startswith(prefix) else ""
    name = rest.rsplit("/", 1)[-1]
    match = _STAMP.search(name)
    if match is None or not _DAY_AND_NAME.fullmatch(rest):
        return last_key
    start = datetime.strptime(match.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC) - lookback
    # `<account>_CloudTrail_<region>_` then the rewound time: sorts just before every file named from then on.
    return f"{prefix}{start:%Y/%m/%d}/{name[: match.start() + 1]}{start:%Y%m%dT%H%M}Z"


def recent_keys(keys: Iterable[str], newest: str, lookback: timedelta) -> list[str]:
    """The keys to remember as ingested: those within `lookback` of the newest ingested file."""
    newest_time = key_time(newest)
    if newest_time is None:
        return []
    cutoff = newest_time - lookback
    return sorted({k for k in keys if (t := key_time(k)) is not None and t >= cutoff})
