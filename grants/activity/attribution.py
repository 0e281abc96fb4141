"""Who did it: CloudTrail records → ActivityEvent rows, attributed in bulk.

- the account the event happened in (`recipientAccountId`) → the partner owning that dedicated account;
- `userIdentity.sessionContext.sourceIdentity` (`porte-<public id hex>`) → the Porte user;
- the access key id → the CredentialIssue Porte recorded when it minted the session → its grant. Console activity
  is signed with keys the console derives, not the minted ones: there the role session name Porte chose
  (`porte-g<grant>-<user prefix>`, in the assumed-role ARN) names the grant, checked against the user.
- the minting itself (the `AssumeRole` event in the partner account) carries the new key in its response.

An event in a partner account is a Porte session when it is attributed to a grant of that partner held by the
same user; anything else there is flagged. Lookups are cached for the whole run and done per batch, in one
query per kind of key.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from grants.activity.records import event_time, event_uuid

# The columns a record gives, in row order (the loader adds the file and the position in it).
COLUMNS = (
    "event_id",
    "event_time",
    "event_source",
    "event_name",
    "event_type",
    "aws_region",
    "account_id",
    "partner_id",
    "user_id",
    "grant_id",
    "credential_id",
    "identity_type",
    "principal_arn",
    "access_key_id",
    "source_identity",
    "source_ip",
    "user_agent",
    "error_code",
    "error_message",
    "read_only",
    "is_porte_session",
    "flagged",
)

SOURCE_IDENTITY_PREFIX = "porte-"
_SESSION_NAME = re.compile(r"porte-g(\d{1,18})-([0-9a-f]{8})")


def role_session_name(*, grant_id: int, public_id: uuid.UUID) -> str:
    """The RoleSessionName Porte gives every session it mints (it appears in the assumed-role ARN)."""
    return f"porte-g{grant_id}-{public_id.hex[:8]}"


def source_identity_user(source_identity: str) -> uuid.UUID | None:
    """The public id a Porte SourceIdentity names (`porte-<hex>`), or None for anything else."""
    if not source_identity.startswith(SOURCE_IDENTITY_PREFIX):
        return None
    try:
        return uuid.UUID(hex=source_identity[len(SOURCE_IDENTITY_PREFIX) :])
    except ValueError:
        return None


class _Credential(NamedTuple):
    pk: int
    grant_id: int
    user_id: int
    partner_id: int


class _Grant(NamedTuple):
    pk: int
    user_id: int
    user_prefix: str
    partner_id: int


@dataclass(slots=True)
class _Facts:
    """What one record says about its principal, before any lookup."""

    account_id: str
    identity_type: str
    principal_arn: str
    access_key_id: str
    minted_key: str
    source_identity: str
    session_grant: int | None
    session_prefix: str


def _text(value: Any, limit: int) -> str:
    if value.__class__ is str:
        # The common case, kept cheap: this runs a dozen times per event.
        return value[:limit] if "\x00" not in value else value.replace("\x00", "")[:limit]
    if value is None:
        return ""
    return _text(str(value), limit)


def _read_only(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _facts(record: dict[str, Any], path_account: str) -> _Facts:
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        identity = {}
    context = identity.get("sessionContext")
    if not isinstance(context, dict):
        context = {}
    source_identity = _text(context.get("sourceIdentity"), 64)
    minted_key = ""
    if record.get("eventName") == "AssumeRole" and record.get("eventSource") == "sts.amazonaws.com":
        # The minting itself: the new session's key and SourceIdentity are in the request and the response.
        response = record.get("responseElements")
        credentials = response.get("credentials") if isinstance(response, dict) else None
        if isinstance(credentials, dict):
            minted_key = _text(credentials.get("accessKeyId"), 128)
        request = record.get("requestParameters")
        if isinstance(request, dict) and not source_identity:
            source_identity = _text(request.get("sourceIdentity"), 64)
    arn = _text(identity.get("arn") or identity.get("invokedBy"), 1024)
    session_grant, session_prefix = None, ""
    if identity.get("type") == "AssumedRole" and "/porte-g" in arn:
        match = _SESSION_NAME.fullmatch(arn.rsplit("/", 1)[-1])
        if match:
            session_grant, session_prefix = int(match.group(1)), match.group(2)
    return _Facts(
        account_id=_text(record.get("recipientAccountId") or path_account, 12),
        identity_type=_text(identity.get("type"), 32),
        principal_arn=arn,
        access_key_id=_text(identity.get("accessKeyId"), 128),
        minted_key=minted_key,
        source_identity=source_identity,
        session_grant=session_grant,
        session_prefix=session_prefix,
    )


class Attributor:
    """Turns records into rows. One per ingestion run: what it has looked up, it remembers."""

    def __init__(self) -> None:
        from partners.models import Partner

        self._partners: dict[str, int] = dict(
            Partner.objects.exclude(aws_account_id="").values_list("aws_account_id", "pk")
        )
        self._credentials: dict[str, _Credential | None] = {}
        self._users: dict[str, int | None] = {}
        self._grants: dict[int, _Grant | None] = {}

    def rows(self, records: list[dict[str, Any]], *, path_account: str = "") -> list[tuple[Any, ...]]:
        """Rows in COLUMNS order, one per record, in the records' order. Raises MalformedLog for a record whose
        eventTime is not a time."""
        facts = [_facts(record, path_account) for record in records]
        self._load(facts)
        return [
            self._row(index, record, fact)
            for index, (record, fact) in enumerate(zip(records, facts, strict=True))
        ]

    def _load(self, facts: list[_Facts]) -> None:
        from grants.models import CredentialIssue, Grant
        from portal.models import User

        keys = {k for f in facts for k in (f.access_key_id, f.minted_key) if k} - self._credentials.keys()
        if keys:
            self._credentials.update(dict.fromkeys(keys))
            # Oldest first, so that if AWS ever reused a key id the newest issue wins.
            for pk, key, grant_id, user_id, partner_id in (
                CredentialIssue.objects.filter(access_key_id__in=keys)
                .order_by("issued_at")
                .values_list("pk", "access_key_id", "grant_id", "grant__user_id", "grant__role__partner_id")
            ):
                self._credentials[key] = _Credential(pk, grant_id, user_id, partner_id)
        identities = {f.source_identity for f in facts if f.source_identity} - self._users.keys()
        if identities:
            self._users.update(dict.fromkeys(identities))
            by_public_id = {
                public_id: identity
                for identity in identities
                if (public_id := source_identity_user(identity)) is not None
            }
            for public_id, pk in User.objects.filter(public_id__in=by_public_id).values_list(
                "public_id", "pk"
            ):
                self._users[by_public_id[public_id]] = pk
        grant_ids = {f.session_grant for f in facts if f.session_grant is not None} - self._grants.keys()
        if grant_ids:
            self._grants.update(dict.fromkeys(grant_ids))
            for pk, user_id, public_id, partner_id in Grant.objects.filter(pk__in=grant_ids).values_list(
                "pk", "user_id", "user__public_id", "role__partner_id"
            ):
                self._grants[pk] = _Grant(pk, user_id, public_id.hex[:8], partner_id)

    def _row(self, index: int, record: dict[str, Any], f: _Facts) -> tuple[Any, ...]:
        partner_id = self._partners.get(f.account_id)
        user_id = self._users.get(f.source_identity) if f.source_identity else None
        key = f.minted_key or f.access_key_id
        credential = self._credentials.get(key) if key else None
        grant: _Credential | _Grant | None = credential
        if grant is None and f.session_grant is not None:
            by_session = self._grants.get(f.session_grant)
            # The session name is only a claim: it counts when it names a grant of the user it carries.
            if by_session is not None and by_session.user_prefix == f.session_prefix:
                grant = by_session
        if user_id is None and grant is not None:
            user_id = grant.user_id
        is_porte_session = (
            grant is not None
            and partner_id is not None
            and grant.partner_id == partner_id
            and grant.user_id == user_id
            and (f.identity_type == "AssumedRole" or bool(f.minted_key))
        )
        return (
            event_uuid(record["eventID"]),
            event_time(record["eventTime"], index),
            _text(record.get("eventSource"), 128),
            _text(record.get("eventName"), 128),
            _text(record.get("eventType"), 32),
            _text(record.get("awsRegion"), 32),
            f.account_id,
            partner_id,
            user_id,
            grant.grant_id if isinstance(grant, _Credential) else (grant.pk if grant else None),
            credential.pk if credential else None,
            f.identity_type,
            f.principal_arn,
            f.access_key_id,
            f.source_identity,
            _text(record.get("sourceIPAddress"), 64),
            _text(record.get("userAgent"), 512),
            _text(record.get("errorCode"), 128),
            _text(record.get("errorMessage"), 1024),
            _read_only(record.get("readOnly")),
            is_porte_session,
            partner_id is not None and not is_porte_session,
        )
