"""CloudTrailSimulator: SIMULATED CloudTrail log files, for the demo and the tests only.

moto emits no CloudTrail. This writes what an organisation trail would deliver for the sessions Porte mints —
gzipped `{"Records": [...]}` files in the documented record format (eventVersion, userIdentity with
sessionContext.sessionIssuer/sourceIdentity/attributes, eventTime, eventSource, eventName, awsRegion,
sourceIPAddress, userAgent, errorCode/errorMessage, requestParameters, responseElements, requestID, eventID,
readOnly, eventType, recipientAccountId) under the documented keys
(`AWSLogs/<org>/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_<stamp>_<id>.json.gz`),
plus digest files under `CloudTrail-Digest/`. Nothing in Porte's ingestion knows this module exists.
"""

from __future__ import annotations

import gzip
import random
import string
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import orjson
from django.conf import settings

from grants.models import CredentialIssue
from grants.policies import role_session_name
from portal import aws

if TYPE_CHECKING:
    from mypy_boto3_s3.literals import BucketLocationConstraintType

BROKER_ACCOUNT = "123456789012"  # moto's default account: Porte's own (management) account in the emulator
TRAIL_NAME = "porte-org-trail"
CLI_AGENT = "aws-cli/2.17.40 md/awscrt#0.21.2 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython"
CONSOLE_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0 Safari/537.36"
)

# (eventSource, eventName, readOnly, requestParameters)
READS: Sequence[tuple[str, str, dict[str, Any] | None]] = (
    ("ec2.amazonaws.com", "DescribeInstances", {"instancesSet": {}, "filterSet": {}, "maxResults": 100}),
    ("ec2.amazonaws.com", "DescribeVpcs", {"vpcSet": {}, "filterSet": {}}),
    ("s3.amazonaws.com", "ListBuckets", {"Host": "s3.eu-west-1.amazonaws.com"}),
    ("ssm.amazonaws.com", "GetParameter", {"name": "/app/config/endpoint", "withDecryption": False}),
    ("logs.amazonaws.com", "DescribeLogGroups", {"limit": 50}),
    ("sts.amazonaws.com", "GetCallerIdentity", None),
)
WRITES: Sequence[tuple[str, str, dict[str, Any] | None]] = (
    (
        "ec2.amazonaws.com",
        "CreateTags",
        {
            "resourcesSet": {"items": [{"resourceId": "i-0abc1234def567890"}]},
            "tagSet": {"items": [{"key": "owner", "value": "partner"}]},
        },
    ),
    ("ssm.amazonaws.com", "PutParameter", {"name": "/app/config/flag", "type": "String", "overwrite": True}),
    ("logs.amazonaws.com", "CreateLogStream", {"logGroupName": "/app/web", "logStreamName": "debug-1"}),
)
DENIED: Sequence[tuple[str, str, str]] = (
    ("iam.amazonaws.com", "CreateUser", "AccessDenied"),
    ("ec2.amazonaws.com", "TerminateInstances", "Client.UnauthorizedOperation"),
    ("s3.amazonaws.com", "DeleteBucket", "AccessDenied"),
)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CloudTrailSimulator:
    """Builds records for Porte sessions and for other principals, and writes them as trail files into S3."""

    def __init__(
        self, *, org_id: str, bucket: str | None = None, region: str | None = None, seed: int = 7
    ) -> None:
        self.org_id = org_id
        self.bucket = bucket or settings.ACTIVITY_TRAIL_BUCKET
        self.region = region or settings.AWS_REGION
        # Simulated data, reproducible by seed: not a security use of randomness.
        self.rng = random.Random(seed)  # noqa: S311

    # --- identities --------------------------------------------------------------------------------------------

    def _id(self, prefix: str, length: int = 17) -> str:
        return prefix + "".join(self.rng.choices(string.ascii_uppercase + string.digits, k=length))

    def porte_identity(self, issue: CredentialIssue, *, console: bool = False) -> dict[str, Any]:
        """The assumed-role session Porte minted for `issue` (console sessions sign with keys of their own)."""
        grant = issue.grant
        role, user = grant.role, grant.user
        account = role.partner.aws_account_id
        session = role_session_name(grant_id=grant.pk, public_id=user.public_id)
        role_id = "AROA" + role.slug.upper().replace("-", "")[:8].ljust(8, "X") + "EXAMPLE"
        return {
            "type": "AssumedRole",
            "principalId": f"{role_id}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role.iam_name}/{session}",
            "accountId": account,
            "accessKeyId": self._id("ASIA", 16) if console else issue.access_key_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": f"arn:aws:iam::{account}:role/{role.iam_name}",
                    "accountId": account,
                    "userName": role.iam_name,
                },
                "attributes": {"creationDate": _iso(issue.issued_at), "mfaAuthenticated": "false"},
                "sourceIdentity": user.source_identity,
            },
        }

    def iam_user_identity(self, account_id: str, user_name: str = "legacy-deployer") -> dict[str, Any]:
        """A long-lived IAM user: not a Porte session, so flagged when it acts in a partner account."""
        return {
            "type": "IAMUser",
            "principalId": self._id("AIDA"),
            "arn": f"arn:aws:iam::{account_id}:user/{user_name}",
            "accountId": account_id,
            "accessKeyId": self._id("AKIA", 16),
            "userName": user_name,
        }

    def role_identity(
        self, account_id: str, role_name: str, session: str, *, source_identity: str = ""
    ) -> dict[str, Any]:
        """Some other assumed-role session (e.g. a role chained from a Porte session keeps its SourceIdentity)."""
        context: dict[str, Any] = {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAOTHERROLEEXAMPLE",
                "arn": f"arn:aws:iam::{account_id}:role/{role_name}",
                "accountId": account_id,
                "userName": role_name,
            },
            "attributes": {"creationDate": _iso(datetime.now(UTC)), "mfaAuthenticated": "false"},
        }
        if source_identity:
            context["sourceIdentity"] = source_identity
        return {
            "type": "AssumedRole",
            "principalId": f"AROAOTHERROLEEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{account_id}:assumed-role/{role_name}/{session}",
            "accountId": account_id,
            "accessKeyId": self._id("ASIA", 16),
            "sessionContext": context,
        }

    # --- records -----------------------------------------------------------------------------------------------

    def record(
        self,
        account_id: str,
        identity: dict[str, Any],
        source: str,
        name: str,
        *,
        at: datetime,
        read_only: bool | None = True,
        request: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None,
        error: tuple[str, str] | None = None,
        event_type: str = "AwsApiCall",
        source_ip: str = "203.0.113.10",
        user_agent: str = CLI_AGENT,
        region: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "eventVersion": "1.10",
            "userIdentity": identity,
            "eventTime": _iso(at),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region or self.region,
            "sourceIPAddress": source_ip,
            "userAgent": user_agent,
            "requestParameters": request,
            "responseElements": response,
            "requestID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "eventID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "eventType": event_type,
            "managementEvent": True,
            "recipientAccountId": account_id,
            "eventCategory": "Management",
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": f"{source.split('.')[0]}.{region or self.region}.amazonaws.com",
            },
        }
        if read_only is not None:
            record["readOnly"] = read_only
        if error:
            record["errorCode"], record["errorMessage"] = error
        if extra:
            record.update(extra)
        return record

    def mint_record(self, issue: CredentialIssue, *, at: datetime | None = None) -> dict[str, Any]:
        """The AssumeRole by Porte's broker that minted `issue`, as logged in the partner account."""
        grant = issue.grant
        role, user, partner = grant.role, grant.user, grant.role.partner
        session = role_session_name(grant_id=grant.pk, public_id=user.public_id)
        broker = {"type": "AWSAccount", "principalId": "AIDAPORTEBROKEREXAMPLE", "accountId": BROKER_ACCOUNT}
        return self.record(
            partner.aws_account_id,
            broker,
            "sts.amazonaws.com",
            "AssumeRole",
            at=at or issue.issued_at,
            user_agent="Boto3/1.38.0 md/Botocore#1.38.0 ua/2.1 os/linux lang/python#3.11.7 Botocore/1.38.0",
            source_ip="198.51.100.1",
            request={
                "roleArn": role.aws_role_arn or f"arn:aws:iam::{partner.aws_account_id}:role/{role.iam_name}",
                "roleSessionName": session,
                "durationSeconds": int((issue.expires_at - issue.issued_at).total_seconds()),
                "sourceIdentity": user.source_identity,
                "tags": [
                    {"key": "porte:partner", "value": partner.slug},
                    {"key": "porte:grant", "value": str(grant.pk)},
                    {"key": "porte:user", "value": str(user.public_id)},
                ],
            },
            response={
                "credentials": {
                    "accessKeyId": issue.access_key_id,
                    "expiration": issue.expires_at.strftime("%b %d, %Y, %I:%M:%S %p"),
                },
                "assumedRoleUser": {
                    "assumedRoleId": f"AROAEXAMPLE:{session}",
                    "arn": f"arn:aws:sts::{partner.aws_account_id}:assumed-role/{role.iam_name}/{session}",
                },
                "sourceIdentity": user.source_identity,
            },
            extra={
                "resources": [
                    {
                        "accountId": partner.aws_account_id,
                        "type": "AWS::IAM::Role",
                        "ARN": f"arn:aws:iam::{partner.aws_account_id}:role/{role.iam_name}",
                    }
                ],
                "sharedEventID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            },
        )

    def session_records(
        self,
        issue: CredentialIssue,
        *,
        at: datetime | None = None,
        reads: int = 3,
        writes: int = 1,
        denied: int = 1,
        mint: bool = True,
    ) -> list[dict[str, Any]]:
        """What a person does with one minted session: the mint, a console sign-in for console sessions, reads,
        writes and refused calls (AccessDenied), a few seconds apart."""
        start = at or issue.issued_at
        console = issue.kind == CredentialIssue.Kind.CONSOLE
        identity = self.porte_identity(issue, console=console)
        account = issue.grant.role.partner.aws_account_id
        ip = issue.source_ip or "203.0.113.10"
        agent = CONSOLE_AGENT if console else CLI_AGENT
        records: list[dict[str, Any]] = [self.mint_record(issue)] if mint else []
        step = iter(range(1, 10_000))
        if console:
            records.append(
                self.record(
                    account,
                    identity,
                    "signin.amazonaws.com",
                    "ConsoleLogin",
                    at=start + timedelta(seconds=2),
                    read_only=False,
                    event_type="AwsConsoleSignIn",
                    source_ip=ip,
                    user_agent=agent,
                    region="us-east-1",
                    response={"ConsoleLogin": "Success"},
                    extra={
                        "additionalEventData": {
                            "LoginTo": settings.AWS_CONSOLE_URL,
                            "MobileVersion": "No",
                            "MFAUsed": "No",
                        }
                    },
                )
            )
        for catalog, count, read_only in ((READS, reads, True), (WRITES, writes, False)):
            for i in range(count):
                source, name, request = catalog[i % len(catalog)]
                records.append(
                    self.record(
                        account,
                        identity,
                        source,
                        name,
                        at=start + timedelta(seconds=5 * next(step)),
                        read_only=read_only,
                        request=request,
                        source_ip=ip,
                        user_agent=agent,
                    )
                )
        for i in range(denied):
            source, name, code = DENIED[i % len(DENIED)]
            action = f"{source.split('.')[0]}:{name}"
            message = (
                f"User: {identity['arn']} is not authorized to perform: {action} because no "
                f"identity-based policy allows the {action} action"
            )
            records.append(
                self.record(
                    account,
                    identity,
                    source,
                    name,
                    at=start + timedelta(seconds=5 * next(step)),
                    read_only=False,
                    error=(code, message),
                    source_ip=ip,
                    user_agent=agent,
                )
            )
        return records

    def principal_records(
        self, account_id: str, identity: dict[str, Any], *, at: datetime, reads: int = 2, denied: int = 0
    ) -> list[dict[str, Any]]:
        """Reads (and refused calls) by any other principal, in any account."""
        records = [
            self.record(
                account_id,
                identity,
                source,
                name,
                at=at + timedelta(seconds=7 * i),
                request=request,
                source_ip="192.0.2.44",
                user_agent=CLI_AGENT,
            )
            for i, (source, name, request) in enumerate(READS[:reads])
        ]
        for i in range(denied):
            source, name, code = DENIED[i % len(DENIED)]
            records.append(
                self.record(
                    account_id,
                    identity,
                    source,
                    name,
                    at=at + timedelta(seconds=60 + i),
                    read_only=False,
                    error=(code, f"not authorized to perform {name}"),
                    source_ip="192.0.2.44",
                )
            )
        return records

    # --- files -------------------------------------------------------------------------------------------------

    def log_key(self, account_id: str, at: datetime, *, region: str | None = None) -> str:
        region = region or self.region
        at = at.astimezone(UTC)
        unique = "".join(self.rng.choices(string.ascii_letters + string.digits, k=16))
        return (
            f"{self._root()}{account_id}/CloudTrail/{region}/{at:%Y/%m/%d}/"
            f"{account_id}_CloudTrail_{region}_{at:%Y%m%dT%H%M}Z_{unique}.json.gz"
        )

    def digest_key(self, account_id: str, at: datetime, *, region: str | None = None) -> str:
        region = region or self.region
        at = at.astimezone(UTC)
        return (
            f"{self._root()}{account_id}/CloudTrail-Digest/{region}/{at:%Y/%m/%d}/"
            f"{account_id}_CloudTrail-Digest_{region}_{TRAIL_NAME}_{region}_{at:%Y%m%dT%H%M%S}Z.json.gz"
        )

    def _root(self) -> str:
        prefix = settings.ACTIVITY_TRAIL_PREFIX
        return f"{prefix + '/' if prefix else ''}AWSLogs/{self.org_id}/"

    @staticmethod
    def encode(records: Sequence[dict[str, Any]]) -> bytes:
        return gzip.compress(orjson.dumps({"Records": list(records)}), compresslevel=6)

    def ensure_bucket(self) -> None:
        s3 = aws.management().s3
        if self.bucket in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            return
        if self.region == "us-east-1":  # the one region that takes no location constraint
            s3.create_bucket(Bucket=self.bucket)
        else:
            location = cast("BucketLocationConstraintType", self.region)
            s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": location})

    def put(self, key: str, body: bytes) -> str:
        aws.management().s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key

    def write_log(
        self, account_id: str, records: Sequence[dict[str, Any]], *, at: datetime, region: str | None = None
    ) -> str:
        """One delivered log file; returns its key."""
        return self.put(self.log_key(account_id, at, region=region), self.encode(records))

    def write_digest(
        self, account_id: str, log_keys: Sequence[str], *, at: datetime, region: str | None = None
    ) -> str:
        """An integrity digest naming the log files of the hour (Porte must skip it)."""
        body = {
            "awsAccountId": account_id,
            "digestStartTime": _iso(at - timedelta(hours=1)),
            "digestEndTime": _iso(at),
            "digestS3Bucket": self.bucket,
            "digestS3Object": self.digest_key(account_id, at, region=region),
            "digestPublicKeyFingerprint": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "digestSignatureAlgorithm": "SHA256withRSA",
            "newestEventTime": _iso(at),
            "oldestEventTime": _iso(at - timedelta(hours=1)),
            "previousDigestS3Bucket": None,
            "previousDigestS3Object": None,
            "previousDigestHashValue": None,
            "previousDigestHashAlgorithm": None,
            "previousDigestSignature": None,
            "logFiles": [
                {
                    "s3Bucket": self.bucket,
                    "s3Object": key,
                    "hashValue": "00" * 32,
                    "hashAlgorithm": "SHA-256",
                    "newestEventTime": _iso(at),
                    "oldestEventTime": _iso(at - timedelta(hours=1)),
                }
                for key in log_keys
            ],
        }
        return self.put(self.digest_key(account_id, at, region=region), gzip.compress(orjson.dumps(body)))
