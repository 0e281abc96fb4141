"""The one module that makes boto3 clients.

Three kinds of caller identity:
- management: Porte's own credentials (Organizations, account vending);
- partner admin: `PORTE_PARTNER_ADMIN_ROLE` assumed in a partner account (provisioning IAM there);
- broker: the principal that assumes partners' scoped roles to mint credentials for people.

`AWS_ENDPOINT_URL` points every client at moto on loopback locally and in tests; unset, the same code talks to AWS.

Clients are typed (boto3-stubs) and translated: every call, page and waiter raises only Porte's error kinds —
`AwsUnavailable` (retry later) or `AwsRejected` (permanent, show the reason; `AwsNotFound` and
`AwsAlreadyExists` are the two a caller often expects). Call sites hold no error plumbing:

    aws.partner(account_id).iam.get_role(RoleName=name)      # raises AwsNotFound if there is none
    aws.management().organizations.describe_organization()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache, wraps
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from botocore.parsers import ResponseParserError
from django.conf import settings
from django.utils import timezone

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_organizations import OrganizationsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sts import STSClient

_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "ConcurrentModification",
    "ConcurrentModificationException",
    "IDPCommunicationError",
}


class AwsError(Exception):
    """An AWS call failed; `str(exc)` is safe to show to staff (no credentials in it)."""


class AwsUnavailable(AwsError):
    """Transient: AWS (or the local emulator) could not be reached, throttled us, or answered 5xx. Retry."""


class AwsRejected(AwsError):
    """Permanent: AWS refused the request as made. Retrying the same request will not help."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class AwsNotFound(AwsRejected):
    """What the call names does not exist (a role, a key, an account, a log group...)."""


class AwsAlreadyExists(AwsRejected):
    """What the call would create or attach is there already."""


_NOT_FOUND_CODES = {
    "NoSuchEntity",
    "NoSuchKey",
    "NoSuchBucket",
    "404",
    "NotFound",
    "AccountNotFoundException",
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "AWSOrganizationsNotInUseException",  # there is no organisation
}
_ALREADY_EXISTS_CODES = {
    "EntityAlreadyExists",
    "ResourceAlreadyExistsException",
    "DuplicateOrganizationalUnitException",
    "DuplicatePolicyAttachmentException",
    "DuplicatePolicyException",
    "PolicyTypeAlreadyEnabledException",
    "BucketAlreadyOwnedByYou",
}


class Credentials(NamedTuple):
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime


@contextmanager
def _translated() -> Iterator[None]:
    """The one place botocore's exceptions become Porte's kinds of failure."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _TRANSIENT_CODES or status >= 500:
            raise AwsUnavailable(f"AWS is temporarily unavailable ({code}).") from exc
        kind = (
            AwsNotFound
            if code in _NOT_FOUND_CODES
            else AwsAlreadyExists
            if code in _ALREADY_EXISTS_CODES
            else AwsRejected
        )
        raise kind(code, str(error.get("Message", ""))) from exc
    except (ConnectionError, HTTPClientError) as exc:
        raise AwsUnavailable(f"AWS could not be reached ({type(exc).__name__}).") from exc
    except ResponseParserError as exc:
        # Not an AWS answer at all (a proxy's or load balancer's error page): transient, like a 5xx.
        raise AwsUnavailable("AWS answered with something that is not an AWS response.") from exc
    except BotoCoreError as exc:
        raise AwsRejected(type(exc).__name__, str(exc)) from exc


def _config() -> Config:
    # "standard" retry mode backs off on throttling and 5xx; short timeouts keep a dead endpoint from stalling
    # a worker for minutes.
    return Config(
        region_name=settings.AWS_REGION,
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=3,
        read_timeout=15,
        max_pool_connections=20,
    )


_LATER = {"get_paginator", "paginate", "get_waiter", "iter_chunks", "iter_lines"}


class _Translating:
    """A boto3 client, paginator, page iterator or waiter whose calls raise only Porte's error kinds."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name in ("exceptions", "meta") or not callable(attr):
            return attr

        @wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with _translated():
                result = attr(*args, **kwargs)
            # Paginators, their pages, waiters and streamed bodies reach AWS later: translate those calls too.
            if name in _LATER:
                return _Translating(result)
            if isinstance(result, dict) and hasattr(result.get("Body"), "iter_chunks"):
                result["Body"] = _Translating(result["Body"])
            return result

        return call

    def __iter__(self) -> Iterator[Any]:
        pages = iter(self._target)
        while True:
            with _translated():
                try:
                    page = next(pages)
                except StopIteration:
                    return
            yield page


@lru_cache(maxsize=256)
def _cached_client(
    service: str, region: str, endpoint: str | None, key: str | None, secret: str | None, token: str | None
) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token, region_name=region
    )
    return _Translating(cast(Any, session).client(service, endpoint_url=endpoint, config=_config()))


class Clients:
    """Typed, translated clients (thread-safe, cached) with Porte's endpoint, retries and timeouts, acting as
    one identity in one region."""

    def __init__(self, credentials: Credentials | None = None, region: str | None = None) -> None:
        self._credentials, self._region = credentials, region

    def _client(self, service: str) -> Any:
        creds = self._credentials
        return _cached_client(
            service,
            self._region or settings.AWS_REGION,
            settings.AWS_ENDPOINT_URL,
            creds.access_key_id if creds else None,
            creds.secret_access_key if creds else None,
            creds.session_token if creds else None,
        )

    @property
    def ec2(self) -> EC2Client:
        return cast("EC2Client", self._client("ec2"))

    @property
    def iam(self) -> IAMClient:
        return cast("IAMClient", self._client("iam"))

    @property
    def logs(self) -> CloudWatchLogsClient:
        return cast("CloudWatchLogsClient", self._client("logs"))

    @property
    def organizations(self) -> OrganizationsClient:
        return cast("OrganizationsClient", self._client("organizations"))

    @property
    def s3(self) -> S3Client:
        return cast("S3Client", self._client("s3"))

    @property
    def sqs(self) -> SQSClient:
        return cast("SQSClient", self._client("sqs"))

    @property
    def sts(self) -> STSClient:
        return cast("STSClient", self._client("sts"))


def management(region: str | None = None) -> Clients:
    """Porte's own credentials (Organizations, the trail bucket and its queue)."""
    return Clients(region=region)


def using(credentials: Credentials | None, region: str | None = None) -> Clients:
    """Explicit credentials (None: Porte's own)."""
    return Clients(credentials, region)


def assume_role(
    role_arn: str,
    *,
    session_name: str,
    using: Credentials | None = None,
    duration_seconds: int = 3600,
    **extra: Any,
) -> Credentials:
    response = Clients(using).sts.assume_role(
        RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_seconds, **extra
    )
    c = response["Credentials"]
    return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], c["Expiration"])


class _CredentialCache:
    """Assumed-role credentials per role ARN, refreshed ten minutes before they expire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, Credentials] = {}

    def get(self, role_arn: str, session_name: str, using: Credentials | None = None) -> Credentials:
        with self._lock:
            cached = self._items.get(role_arn)
            if cached and (cached.expiration - timezone.now()).total_seconds() > 600:
                return cached
        fresh = assume_role(role_arn, session_name=session_name, using=using)
        with self._lock:
            self._items[role_arn] = fresh
        return fresh

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_credentials = _CredentialCache()


def partner_admin_credentials(account_id: str) -> Credentials:
    arn = f"arn:aws:iam::{account_id}:role/{settings.AWS_PARTNER_ADMIN_ROLE_NAME}"
    return _credentials.get(arn, "porte-provisioning")


def partner(account_id: str, region: str | None = None) -> Clients:
    """Porte's admin role inside a partner's dedicated account."""
    return Clients(partner_admin_credentials(account_id), region)


def broker_credentials() -> Credentials | None:
    """Credentials of the broker principal; None means Porte's own credentials are the broker."""
    if not settings.AWS_BROKER_ROLE_ARN:
        return None
    return _credentials.get(settings.AWS_BROKER_ROLE_ARN, "porte-broker")


def broker_is_chained() -> bool:
    """AWS caps sessions assumed from an assumed-role session ("role chaining") at one hour."""
    return bool(settings.AWS_BROKER_ROLE_ARN)


@lru_cache(maxsize=1)
def broker_principal_arn() -> str:
    """The principal partner roles trust. Configured, or discovered once from the broker's own identity."""
    if settings.AWS_BROKER_PRINCIPAL_ARN:
        return str(settings.AWS_BROKER_PRINCIPAL_ARN)
    if settings.AWS_BROKER_ROLE_ARN:
        return str(settings.AWS_BROKER_ROLE_ARN)
    return str(management().sts.get_caller_identity()["Arn"])


def reset_caches() -> None:
    """Forget clients and credentials (tests point Porte at a fresh emulator)."""
    _cached_client.cache_clear()
    broker_principal_arn.cache_clear()
    _credentials.clear()


def wait_until(predicate: Any, *, timeout: float, interval: float = 1.0) -> bool:
    """Poll `predicate()` until it is truthy or `timeout` seconds pass (used for Organizations' async calls)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
