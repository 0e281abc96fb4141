"""Where the log files are: an organisation trail's S3 layout, and the arithmetic of resuming in it.

    <trail prefix>/AWSLogs/<org id>/<account>/CloudTrail/<region>/YYYY/MM/DD/
        <account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<unique>.json.gz
    <trail prefix>/AWSLogs/<org id>/<account>/CloudTrail-Digest/...   (integrity digests: never ingested)

One cursor per `.../CloudTrail/<region>/` prefix: within it, log file names sort by delivery time. Only the
prefixes of partners' accounts are read (activity/scope.py). Anything else in a prefix (a stray upload, an odd
suffix, a name that does not follow the layout) is not a log file: it is recorded as such and never moves a cursor
(activity/ingest.py), so it cannot hide the files named after it.
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
# A log file as CloudTrail names it: the account and region of its folder, in its name too; the day folder and the
# name's delivery time agree (the cursor's arithmetic relies on both sorting the same way).
_LOG_KEY = re.compile(
    r"(?:^|/)(?P<account>\d{12})/CloudTrail/(?P<region>[a-z0-9-]{1,32})/"
    r"(?P<day>\d{4}/\d{2}/\d{2})/(?P=account)_CloudTrail_(?P=region)_(?P<stamp>\d{8}T\d{4})Z_[A-Za-z0-9]{1,64}"
    + re.escape(LOG_SUFFIX)
)
_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TrailObject:
    key: str
    size: int | None  # as listed (None: named by a notification, not listed)


class TrailSource(Protocol):
    """A place holding an organisation trail's files. S3 in production; the benchmark also reads a directory."""

    bucket: str

    def prefixes(self, accounts: Iterable[str]) -> list[str]: ...

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

    def prefixes(self, accounts: Iterable[str]) -> list[str]:
        """The `<account>/CloudTrail/<region>/` prefixes of these accounts: one listing per account, whatever the
        size of the organisation."""
        return [
            region for account in accounts for region in self._children(f"{self.root}{account}/CloudTrail/")
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


def log_time(key: str) -> datetime | None:
    """The delivery time of a key named as CloudTrail names log files (to the minute); None for any other key."""
    match = _LOG_KEY.search(key)
    if match is None or match.end() != len(key):
        return None
    stamp = match.group("stamp")
    if match.group("day").replace("/", "") != stamp[:8]:
        return None
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M").replace(tzinfo=UTC)
    except ValueError:  # a 13th month, a 61st minute
        return None


def is_log_file(key: str) -> bool:
    return log_time(key) is not None


def prefix_of(key: str) -> tuple[str, str]:
    """(account, region) of a key under `.../<account>/CloudTrail/<region>/`, ("", "") if it is not under one."""
    head, found, rest = key.partition("/CloudTrail/")
    if not found:
        return "", ""
    return head.rsplit("/", 1)[-1], rest.split("/", 1)[0]


def path_account(key: str) -> str:
    """The account a log file belongs to, from `.../<account>/CloudTrail/...`."""
    return prefix_of(key)[0]


def resume_after(prefix: str, last_key: str, lookback: timedelta) -> str:
    """The StartAfter of the next listing: `lookback` before the newest ingested file's time, in the same naming,
    so that files delivered late with earlier names are listed again (the cursor's recent keys skip the rest).
    `last_key` is always a log file's key (only those move a cursor); anything else starts from the beginning."""
    rest = last_key[len(prefix) :] if last_key.startswith(prefix) else ""
    name = rest.rsplit("/", 1)[-1]
    match = _STAMP.search(name)
    newest = log_time(last_key)
    if match is None or newest is None or not _DAY_AND_NAME.fullmatch(rest):
        return ""
    start = newest - lookback
    # `<account>_CloudTrail_<region>_` then the rewound time: sorts just before every file named from then on.
    return f"{prefix}{start:%Y/%m/%d}/{name[: match.start() + 1]}{start:%Y%m%dT%H%M}Z"


def recent_keys(keys: Iterable[str], newest: str, lookback: timedelta) -> list[str]:
    """The keys to remember as ingested: those within `lookback` of the newest ingested file."""
    newest_time = log_time(newest)
    if newest_time is None:
        return []
    cutoff = newest_time - lookback
    return sorted({k for k in keys if (t := log_time(k)) is not None and t >= cutoff})
