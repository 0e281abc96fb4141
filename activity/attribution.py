"""Who did it: CloudTrail records → ActivityEvent rows, attributed in bulk.

- the account the event happened in (`recipientAccountId`) → the partner owning that dedicated account;
- `userIdentity.sessionContext.sourceIdentity` (`porte-<public id hex>`) → the Porte user;
- the access key id → the CredentialIssue Porte recorded when it minted the session → its grant. Console activity
  is signed with keys the console derives, not the minted ones: there the role session name Porte chose
  (`porte-g<grant>-<user prefix>`, in the assumed-role ARN) names the grant, checked against the user.
- the minting itself (the `AssumeRole` event in the partner account) carries the new key in its response.

An event in a partner account is a Porte session when it is attributed to a grant of that partner held by the
same user; anything else there is flagged. When the SourceIdentity names one Porte user and the credentials (or
the session name) a grant of another, the event is neither's: attributed to no one, an `attribution_conflict`.
Lookups are cached for the whole run and done per batch, in one query per kind of key.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple

from activity.interning import ACTION_FIELDS, CONTEXT_FIELDS, Interner, Key
from activity.models import ActivityAction, ActivityContext, hour_of
from activity.records import (
    MalformedLog,
    Refusal,
    TrailDocument,
    TrailRecord,
    UserIdentity,
    event_time,
    event_uuid,
    from_objects,
    json_value,
    text_of,
)
from grants.models import CredentialIssue, Grant
from partners.models import Partner
from portal.models import User

# The columns of a row, in row order (the loader adds the file and the position in it): first what the record itself
# says (RECORD_COLUMNS, read before any lookup), then who it is attributed to.
RECORD_COLUMNS = (
    "event_id",
    "event_time",
    "hour",
    "event_source",
    "event_name",
    "aws_region",
    "account_id",
    "identity_type",
    "principal_arn",
    "access_key_id",
    "source_ip",
    "user_agent",
    "error_code",
    "error_message",
    "read_only",
)
COLUMNS = (
    *RECORD_COLUMNS,
    "partner_id",
    "user_id",
    "grant_id",
    "credential_id",
    "is_porte_session",
    "flagged",
    "attribution_conflict",
    # The ids of what the event shares with others (activity/interning.py).
    "context_id",
    "action_id",
)

SOURCE_IDENTITY_PREFIX = "porte-"
_SESSION_NAME = re.compile(r"porte-g(\d{1,18})-([0-9a-f]{8})")


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


# What one record says, before any lookup: its RECORD_COLUMNS values, then the keys attribution looks up. A plain
# tuple (a dataclass per record costs more than the rest of the record's reading); positions named below.
Facts = tuple[Any, ...]
_RECORD = len(RECORD_COLUMNS)
_ACCOUNT = RECORD_COLUMNS.index("account_id")
_IDENTITY_TYPE = RECORD_COLUMNS.index("identity_type")
_ACCESS_KEY = RECORD_COLUMNS.index("access_key_id")
# Read from the record to attribute it, not stored (the record is in its file).
_MINTED_KEY, _SESSION_GRANT, _SESSION_PREFIX, _SOURCE_IDENTITY = (
    _RECORD,
    _RECORD + 1,
    _RECORD + 2,
    _RECORD + 3,
)
_NO_IDENTITY = UserIdentity()


def _text(value: Any, limit: int) -> str:
    """A JSON value of a minting's request or response as text of at most `limit` characters."""
    return (text_of(value) or "")[:limit]


def _read_only(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


@lru_cache(maxsize=4096)
def _session_name(arn: str) -> tuple[int | None, str]:
    """(grant id, user prefix) from Porte's role session name at the end of an assumed-role ARN. A session's
    events all carry the same ARN: each is matched once."""
    match = _SESSION_NAME.fullmatch(arn.rsplit("/", 1)[-1])
    return (int(match.group(1)), match.group(2)) if match else (None, "")


def _principal(identity: UserIdentity) -> str:
    """Who acted, for an identity with no ARN, by its userIdentity type (CloudTrail's documented fields): stable
    for the same principal, and readable.

    - IdentityCenterUser: `<identity store ARN>/user/<user id>` (`onBehalfOf`; its `credentialId` is the session's,
      not the person's);
    - SAMLUser, WebIdentityUser: `<identityProvider>/<userName>`;
    - AWSAccount (another account acting), Unknown and anything else: `<accountId>:<principalId>`, or its user name
      where it has no principal id (a failed console sign-in is Unknown with a user name)."""
    kind = identity.type
    if kind == "IdentityCenterUser":
        on_behalf = identity.onBehalfOf
        if on_behalf is not None:
            store, user = on_behalf.identityStoreArn or "", on_behalf.userId or ""
            if user:
                return f"{store}/user/{user}" if store else user
    elif kind in ("SAMLUser", "WebIdentityUser"):
        provider, name = identity.identityProvider or "", identity.userName or ""
        if name:
            return f"{provider}/{name}" if provider else name
    account, name = identity.accountId or "", identity.principalId or identity.userName or ""
    return f"{account}:{name}" if account and name else account or name


def _facts(record: TrailRecord, path_account: str, time: datetime, hour: int) -> Facts:
    # Texts are str or None, free of NUL (records.TrailRecord): each is cut to its column's length inline (a
    # function call per field was a good part of a record's reading).
    identity = record.userIdentity or _NO_IDENTITY
    context = identity.sessionContext
    source_identity = (context.sourceIdentity or "")[:64] if context is not None else ""
    minted_key = ""
    event_name, event_source = record.eventName or "", record.eventSource or ""
    if event_name == "AssumeRole" and event_source == "sts.amazonaws.com":
        # The minting itself: the new session's key and SourceIdentity are in the request and the response.
        response = json_value(record.responseElements)
        credentials = response.get("credentials") if isinstance(response, dict) else None
        if isinstance(credentials, dict):
            minted_key = _text(credentials.get("accessKeyId"), 128)
        request = json_value(record.requestParameters)
        if isinstance(request, dict) and not source_identity:
            source_identity = _text(request.get("sourceIdentity"), 64)
    # Nearly every identity has an ARN (an AWS service: the service it acted as); the others are named from
    # what their type carries, and only then.
    arn = (identity.arn or identity.invokedBy or _principal(identity))[:1024]
    identity_type = identity.type or ""
    session_grant, session_prefix = None, ""
    if "/porte-g" in arn and identity_type == "AssumedRole":
        session_grant, session_prefix = _session_name(arn)
    return (
        event_uuid(record.eventID),
        time,
        hour,
        event_source[:128],
        event_name[:128],
        (record.awsRegion or "")[:32],
        (record.recipientAccountId or path_account)[:12],
        identity_type[:32],
        arn,
        (identity.accessKeyId or "")[:128],
        (record.sourceIPAddress or "")[:64],
        (record.userAgent or "")[:512],
        (record.errorCode or "")[:128],
        (record.errorMessage or "")[:1024],
        _read_only(record.readOnly),
        minted_key,
        session_grant,
        session_prefix,
        source_identity,
    )


def read_facts(document: TrailDocument, *, path_account: str = "") -> tuple[list[Facts], list[Refusal]]:
    """What each record says, in the records' order, and the records refused: no database needed, so the ingestion
    loop does this for the next file while the database inserts the previous one's events. A record is refused
    when the document refused it (see records.read_document) or when its eventTime is not a time; the facts are
    those of the others, in order."""
    if document.refused:
        return _read_carefully(document, path_account)
    # A file's events share their seconds: each distinct time parsed once.
    times: dict[str, tuple[datetime, int]] = {}
    facts = []
    try:
        for record in document.records:
            text = record.eventTime  # type: ignore[union-attr]  # no record is refused here
            known = times.get(text)
            if known is None:
                time = event_time(text)
                known = times[text] = (time, hour_of(time))
            facts.append(_facts(record, path_account, *known))  # type: ignore[arg-type]
    except MalformedLog:
        # Times are checked only when one fails: then each record is read on its own, and only the records with a
        # time that is not one are refused.
        return _read_carefully(document, path_account)
    return facts, []


def _read_carefully(document: TrailDocument, path_account: str) -> tuple[list[Facts], list[Refusal]]:
    """`read_facts` reading each record on its own: those refused, or whose time is not one, are refused."""
    reasons = {refusal.position: refusal.reason for refusal in document.refused}
    facts, refusals = [], []
    for index, record in enumerate(document.records):
        reason = reasons.get(index, "")
        if record is not None and not reason:
            try:
                time = event_time(record.eventTime)
                facts.append(_facts(record, path_account, time, hour_of(time)))
            except MalformedLog as exc:
                reason = str(exc)
        if reason:
            refusals.append(Refusal(index, reason))
    return facts, refusals


# A row's action and context, as their interning keys (in ACTION_FIELDS and CONTEXT_FIELDS order).
_action_key: Callable[[tuple[Any, ...]], Key] = itemgetter(*(COLUMNS.index(c) for c in ACTION_FIELDS))
_context_key: Callable[[tuple[Any, ...]], Key] = itemgetter(*(COLUMNS.index(c) for c in CONTEXT_FIELDS))


class Attributor:
    """Turns records into rows. One per ingestion run: what it has looked up, it remembers."""

    def __init__(self) -> None:
        self._partners: dict[str, int] = dict(
            Partner.objects.exclude(aws_account_id="").values_list("aws_account_id", "pk")
        )
        self._credentials: dict[str, _Credential | None] = {}
        self._users: dict[str, int | None] = {}
        self._grants: dict[int, _Grant | None] = {}
        self._actions = Interner(ActivityAction, ACTION_FIELDS)
        self._contexts = Interner(ActivityContext, CONTEXT_FIELDS)

    def rows(self, records: list[Any], *, path_account: str = "") -> list[tuple[Any, ...]]:
        """Rows in COLUMNS order for records as JSON objects, one per record that is not refused (see
        `read_facts`), in the records' order."""
        return self.attribute(read_facts(from_objects(records), path_account=path_account)[0])

    def attribute(self, facts: list[Facts]) -> list[tuple[Any, ...]]:
        """Rows in COLUMNS order for records read by `read_facts` (looking up, and storing, what this run has not
        seen yet)."""
        self._load(*self._unseen(facts))
        rows = [self._row(f) for f in facts]
        shared = self._shared(rows)
        if shared is None:
            self._actions.load(map(_action_key, rows))
            self._contexts.load(map(_context_key, rows))
            shared = self._shared(rows)
            assert shared is not None
        return shared

    def attribute_known(self, facts: list[Facts]) -> list[tuple[Any, ...]] | None:
        """As `attribute`, without the database: None when the records name a key this run has not looked up, or
        an action or context it has not met."""
        if any(self._unseen(facts)):
            return None
        return self._shared([self._row(f) for f in facts])

    def _shared(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        """The rows with the ids of their context and action, or None if one of those is not known yet."""
        actions, contexts = self._actions.ids, self._contexts.ids
        shared = []
        for row in rows:
            action, context = actions.get(_action_key(row)), contexts.get(_context_key(row))
            if action is None or context is None:
                return None
            shared.append((*row, context, action))
        return shared

    def _unseen(self, facts: list[Facts]) -> tuple[set[str], set[str], set[int]]:
        """(access keys, source identities, grant ids) the records name that this run has not looked up yet."""
        keys = {k for f in facts for k in (f[_ACCESS_KEY], f[_MINTED_KEY]) if k} - self._credentials.keys()
        identities = {f[_SOURCE_IDENTITY] for f in facts if f[_SOURCE_IDENTITY]} - self._users.keys()
        grant_ids = {f[_SESSION_GRANT] for f in facts if f[_SESSION_GRANT] is not None} - self._grants.keys()
        return keys, identities, grant_ids

    def _load(self, keys: set[str], identities: set[str], grant_ids: set[int]) -> None:
        if keys:
            self._credentials.update(dict.fromkeys(keys))
            # Oldest first, so that if AWS ever reused a key id the newest issue wins.
            for pk, key, grant_id, user_id, partner_id in (
                CredentialIssue.objects.filter(access_key_id__in=keys)
                .order_by("issued_at")
                .values_list("pk", "access_key_id", "grant_id", "grant__user_id", "grant__role__partner_id")
            ):
                self._credentials[key] = _Credential(pk, grant_id, user_id, partner_id)
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
        if grant_ids:
            self._grants.update(dict.fromkeys(grant_ids))
            for pk, user_id, public_id, partner_id in Grant.objects.filter(pk__in=grant_ids).values_list(
                "pk", "user_id", "user__public_id", "role__partner_id"
            ):
                self._grants[pk] = _Grant(pk, user_id, public_id.hex[:8], partner_id)

    def _row(self, f: Facts) -> tuple[Any, ...]:
        partner_id = self._partners.get(f[_ACCOUNT])
        source_identity = f[_SOURCE_IDENTITY]
        user_id = self._users.get(source_identity) if source_identity else None
        minted_key = f[_MINTED_KEY]
        key = minted_key or f[_ACCESS_KEY]
        credential = self._credentials.get(key) if key else None
        grant: _Credential | _Grant | None = credential
        session_grant = f[_SESSION_GRANT]
        if grant is None and session_grant is not None:
            by_session = self._grants.get(session_grant)
            # The session name is only a claim: it counts when it names a grant of the user it carries.
            if by_session is not None and by_session.user_prefix == f[_SESSION_PREFIX]:
                grant = by_session
        if grant is not None and user_id is not None and grant.user_id != user_id:
            # The SourceIdentity names one person, the credentials another: which of them acted, the record
            # cannot say. Neither's (it is in no one's own list), and for staff to look at.
            return (*f[:_RECORD], partner_id, None, None, None, False, partner_id is not None, True)
        if user_id is None and grant is not None:
            user_id = grant.user_id
        is_porte_session = (
            grant is not None
            and partner_id is not None
            and grant.partner_id == partner_id
            and grant.user_id == user_id
            and (f[_IDENTITY_TYPE] == "AssumedRole" or bool(minted_key))
        )
        return (
            *f[:_RECORD],
            partner_id,
            user_id,
            grant.grant_id if isinstance(grant, _Credential) else (grant.pk if grant else None),
            credential.pk if credential else None,
            is_porte_session,
            partner_id is not None and not is_porte_session,
            False,
        )
