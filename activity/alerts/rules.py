"""The detection rules. Each reads the new events of a batch of log files (`Batch`, prefiltered in one pass per
file) and returns `Draft`s: what it found, keyed so that the same incident found twice is one alert.

Cheap by design, since they run inside ingestion: a rule looks only at its candidates (chosen by error code,
event name or attribution in one pass over each file), and reads the database once per batch per rule, never
per event.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from activity.attribution import COLUMNS
from activity.models import ActivityEvent, Alert, SeenSourceIp, hour_of
from activity.records import TrailRecord, json_value
from grants.models import Grant
from partners.models import Partner
from partners.windows import window_for

Rule, Severity = Alert.Rule, Alert.Severity
SAMPLE_EVENTS = 20

_ID, _TIME, _SOURCE, _NAME = (
    COLUMNS.index(c) for c in ("event_id", "event_time", "event_source", "event_name")
)
_PARTNER, _USER, _GRANT = (COLUMNS.index(c) for c in ("partner_id", "user_id", "grant_id"))
_ARN, _KEY, _IP, _ERROR = (
    COLUMNS.index(c) for c in ("principal_arn", "access_key_id", "source_ip", "error_code")
)
_PORTE = COLUMNS.index("is_porte_session")


# --- refused calls ----------------------------------------------------------------------------------------------


def is_denied(error_code: str) -> bool:
    """AccessDenied, AccessDeniedException, Client.UnauthorizedOperation, UnauthorizedOperation ... (the same test
    as DENIED_Q, which counts them in SQL)."""
    return "AccessDenied" in error_code or error_code.endswith("UnauthorizedOperation")


DENIED_Q = Q(error_code__contains="AccessDenied") | Q(error_code__endswith="UnauthorizedOperation")


# --- sensitive actions ------------------------------------------------------------------------------------------

_IAM_VERBS = ("Create", "Put", "Attach", "Detach", "Delete", "Update", "Add", "Remove")
_IAM_OBJECTS = ("Policy", "User", "Role", "AccessKey", "Group", "LoginProfile", "PermissionsBoundary")
_KMS = frozenset({"PutKeyPolicy", "ScheduleKeyDeletion", "DisableKey"})
_CLOUDTRAIL = frozenset({"StopLogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors"})
_S3 = frozenset(
    {
        "PutBucketPolicy",
        "DeleteBucketPolicy",
        "PutBucketAcl",
        "DeleteBucketPublicAccessBlock",
        "DeletePublicAccessBlock",
    }
)
_INGRESS = frozenset({"AuthorizeSecurityGroupIngress"})
# Every name any sensitive kind can have, for the one-set prefilter (IAM by its verbs, below).
_SENSITIVE_NAMES = _KMS | _CLOUDTRAIL | _S3 | _INGRESS
_OPEN_TO_THE_WORLD = frozenset({"0.0.0.0/0", "::/0"})


def _iam_change(name: str) -> bool:
    return name.startswith(_IAM_VERBS) and any(part in name for part in _IAM_OBJECTS)


def sensitive_kind(source: str, name: str, request_parameters: Any) -> str | None:
    """What kind of sensitive change a successful call is ("iam", "kms", "cloudtrail", "s3", "network"), or None.
    `request_parameters` as the record has them (decoded only when an ingress rule reads them)."""
    if source == "iam.amazonaws.com":
        return "iam" if _iam_change(name) else None
    if name in _KMS and source == "kms.amazonaws.com":
        return "kms"
    if name in _CLOUDTRAIL and source == "cloudtrail.amazonaws.com":
        return "cloudtrail"
    if name in _S3 and source in ("s3.amazonaws.com", "s3-control.amazonaws.com"):
        return "s3"
    if name in _INGRESS and source == "ec2.amazonaws.com":
        return "network" if _opens_to_the_world(json_value(request_parameters)) else None
    return None


def _opens_to_the_world(value: Any) -> bool:
    """Whether an ingress request names 0.0.0.0/0 or ::/0 anywhere (ipPermissions.items[].ipRanges.items[].cidrIp,
    ipv6Ranges ...cidrIpv6, or the older top-level cidrIp)."""
    if isinstance(value, dict):
        return any(
            (key.lower() in ("cidrip", "cidripv6") and item in _OPEN_TO_THE_WORLD)
            or _opens_to_the_world(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(_opens_to_the_world(item) for item in value)
    return False


_SENSITIVE_SEVERITY = {
    "cloudtrail": Severity.CRITICAL,
    "iam": Severity.HIGH,
    "kms": Severity.HIGH,
    "s3": Severity.HIGH,
    "network": Severity.HIGH,
}
_SEVERITY_ORDER = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]

# Calls that succeed whatever the policies say (IAM cannot deny them): no evidence that a deny failed.
_UNDENIABLE = frozenset({("sts.amazonaws.com", "GetCallerIdentity")})
_UNDENIABLE_NAMES = frozenset(name for _, name in _UNDENIABLE)


# --- the batch ---------------------------------------------------------------------------------------------------


Row = tuple[Any, ...]


@dataclass
class Batch:
    """The new events of one or more log files (rows, attribution.COLUMNS), as the candidates of each rule, chosen
    in one pass per file (`select`). Only rows are kept, never the parsed records: a file's records can be let
    go as soon as it is selected, and the batches of several files added up (`extend`) to be judged at once."""

    denied: list[Row] = field(default_factory=list)
    sensitive: list[tuple[Row, str]] = field(default_factory=list)  # with its kind (see sensitive_kind)
    porte: list[Row] = field(default_factory=list)  # Porte sessions (for the access window)
    granted: list[Row] = field(default_factory=list)  # successful calls attributed to a grant (IAM can deny)
    granted_latest: dict[int, datetime] = field(default_factory=dict)  # grant -> its latest such call
    user_ips: dict[tuple[int, str], Row] = field(default_factory=dict)  # (user, ip) -> its first row
    # The log files these events were loaded from in this transaction (what a rule reads back from the database
    # can leave their events out: it has them here).
    files: set[int] = field(default_factory=set)

    @classmethod
    def select(cls, rows: list[Row], records: Sequence[TrailRecord]) -> Batch:
        """The candidates among a file's rows (`records` in the same order: a security-group ingress is judged by
        its request parameters)."""
        batch = cls()
        for index, row in enumerate(rows):
            error = row[_ERROR]
            if error:
                if is_denied(error):
                    batch.denied.append(row)
            else:
                name = row[_NAME]
                if name in _SENSITIVE_NAMES or (row[_SOURCE] == "iam.amazonaws.com" and _iam_change(name)):
                    kind = sensitive_kind(row[_SOURCE], name, records[index].requestParameters)
                    if kind is not None:
                        batch.sensitive.append((row, kind))
                grant = row[_GRANT]
                if grant is not None and (
                    name not in _UNDENIABLE_NAMES or (row[_SOURCE], name) not in _UNDENIABLE
                ):
                    batch.granted.append(row)
                    at = row[_TIME]
                    if grant not in batch.granted_latest or at > batch.granted_latest[grant]:
                        batch.granted_latest[grant] = at
            if row[_PORTE]:
                batch.porte.append(row)
            user, ip = row[_USER], row[_IP]
            if user is not None and ip and _is_ip(ip):
                batch.user_ips.setdefault((user, ip), row)
        return batch

    def only(self, rows: Iterable[Row]) -> Batch:
        """The candidates that are among `rows` (the same row objects): for a file only some of whose events
        were new to the database."""
        kept = {id(row) for row in rows}
        granted = [row for row in self.granted if id(row) in kept]
        latest: dict[int, datetime] = {}
        for row in granted:
            latest[row[_GRANT]] = max(row[_TIME], latest.get(row[_GRANT], row[_TIME]))
        return Batch(
            [row for row in self.denied if id(row) in kept],
            [(row, kind) for row, kind in self.sensitive if id(row) in kept],
            [row for row in self.porte if id(row) in kept],
            granted,
            latest,
            {pair: row for pair, row in self.user_ips.items() if id(row) in kept},
            set(self.files),
        )

    def extend(self, other: Batch) -> None:
        """Add the candidates of the files after this batch's."""
        self.denied += other.denied
        self.sensitive += other.sensitive
        self.porte += other.porte
        self.granted += other.granted
        for grant, at in other.granted_latest.items():
            self.granted_latest[grant] = max(at, self.granted_latest.get(grant, at))
        for pair, row in other.user_ips.items():
            self.user_ips.setdefault(pair, row)
        self.files |= other.files

    def __bool__(self) -> bool:
        return bool(self.denied or self.sensitive or self.porte or self.granted or self.user_ips)

    def rows(self) -> list[Row]:
        """Every candidate row, once each (a row can be a candidate of several rules)."""
        seen: dict[int, Row] = {}
        for row in (*self.denied, *(row for row, _ in self.sensitive), *self.porte, *self.granted):
            seen.setdefault(id(row), row)
        for row in self.user_ips.values():
            seen.setdefault(id(row), row)
        return list(seen.values())


@lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    """sourceIPAddress is a service's name ("ec2.amazonaws.com") when AWS acted on the principal's behalf."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass
class Draft:
    """An alert as a rule found it. A draft whose key an alert already has grows that alert (its count, its
    sample, its time span) instead of adding one."""

    rule: str
    severity: str
    dedupe_key: str
    summary: str
    event_ids: list[str]
    event_count: int
    first_event_at: datetime
    last_event_at: datetime
    principal: str = ""
    partner_id: int | None = None
    user_id: int | None = None
    grant_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # Events not counted in an alert yet (a burst's draft also holds the earlier, already counted ones).
    new_events: int = 0

    def __post_init__(self) -> None:
        self.new_events = self.new_events or self.event_count


def _principal(row: tuple[Any, ...]) -> str:
    """Who, for grouping: the Porte user when attributed (across their sessions), else the ARN, else the key."""
    if row[_USER] is not None:
        return f"user:{row[_USER]}"
    return f"arn:{row[_ARN]}" if row[_ARN] else f"key:{row[_KEY]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _draft(
    rule: str, severity: str, key: str, summary: str, rows: list[tuple[Any, ...]], **extra: Any
) -> Draft:
    times = [row[_TIME] for row in rows]
    first = rows[0]
    values: dict[str, Any] = {
        "principal": _principal(first),
        "partner_id": first[_PARTNER],
        "user_id": first[_USER],
        "grant_id": first[_GRANT],
        **extra,
    }
    return Draft(
        rule=rule,
        severity=severity,
        dedupe_key=key,
        summary=summary[:500],
        event_ids=[str(row[_ID]) for row in rows[:SAMPLE_EVENTS]],
        event_count=len(rows),
        first_event_at=min(times),
        last_event_at=max(times),
        **values,
    )


# --- rule: bursts of refused calls ------------------------------------------------------------------------------


def denied_bursts(batch: Batch) -> list[Draft]:
    """>= N refused calls by one principal within M minutes (settings): one alert per burst.

    A burst can span files. New refusals that continue a burst already alerted on (within M minutes of it) only
    grow that alert: one indexed read of the alerts, no read of the activity — so a flood of refusals costs
    little per file once its alert exists. The others are judged with the principal's refusals around them,
    read back by time from the partial index on errors (ids and times only)."""
    if not batch.denied:
        return []
    window = timedelta(minutes=settings.ALERT_DENIED_BURST_MINUTES)
    by_principal: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in batch.denied:
        by_principal[_principal(row)].append(row)
    for rows in by_principal.values():
        rows.sort(key=lambda r: (r[_TIME], r[_ID]))
    lo = min(rows[0][_TIME] for rows in by_principal.values())
    hi = max(rows[-1][_TIME] for rows in by_principal.values())
    ongoing: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for principal, first, last, key in Alert.objects.filter(
        rule=Rule.DENIED_BURST,
        principal__in=list(by_principal),
        last_event_at__gte=lo - window,
        first_event_at__lte=hi + window,
    ).values_list("principal", "first_event_at", "last_event_at", "dedupe_key"):
        ongoing[principal].append((first, last, key))
    drafts: list[Draft] = []
    undecided: dict[str, list[tuple[Any, ...]]] = {}
    for principal, rows in by_principal.items():
        rest = rows
        for first, last, key in ongoing.get(principal, ()):
            joined, rest = _continuing(rest, first, last, window)
            if joined:
                drafts.append(_draft(Rule.DENIED_BURST, Severity.MEDIUM, key, "", joined))
        if rest:
            undecided[principal] = rest
    if undecided:
        drafts += _new_bursts(undecided, window, batch.files, by_principal)
    return drafts


def _continuing(
    rows: list[tuple[Any, ...]], first: datetime, last: datetime, window: timedelta
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(rows that continue the burst spanning first..last, the others). Rows are sorted by time."""
    joined, rest = [], []
    for row in rows:
        if first - window <= row[_TIME] <= last + window:
            joined.append(row)
            last = max(last, row[_TIME])
        else:
            rest.append(row)
    return joined, rest


def _new_bursts(
    undecided: dict[str, list[Row]], window: timedelta, files: set[int], batch_rows: dict[str, list[Row]]
) -> list[Draft]:
    """Bursts among the `undecided` refusals, judged with the principal's other refusals around them: the batch's
    own (`batch_rows`, from `files`), and those stored before, read back."""
    threshold = settings.ALERT_DENIED_BURST_COUNT
    rows = [row for principal_rows in undecided.values() for row in principal_rows]
    users = {row[_USER] for row in rows if row[_USER] is not None}
    arns = {row[_ARN] for row in rows if row[_USER] is None and row[_ARN]}
    keys = {row[_KEY] for row in rows if row[_USER] is None and not row[_ARN] and row[_KEY]}
    timeline: dict[str, dict[str, datetime]] = defaultdict(dict)
    first = min(row[_TIME] for row in rows) - window
    last = max(row[_TIME] for row in rows) + window
    stored = (
        ActivityEvent.objects.filter(
            hour__gte=hour_of(first), hour__lte=hour_of(last), event_time__gte=first, event_time__lte=last
        )
        .exclude(error_code="")  # the partial index on errors by hour
        .exclude(file_id__in=files)  # the batch's own events: in `undecided` already
        .filter(DENIED_Q)
        .filter(
            Q(user_id__in=users)
            | Q(user_id__isnull=True, context__principal_arn__in=arns)
            | Q(user_id__isnull=True, context__principal_arn="", context__access_key_id__in=keys)
        )
        .values_list("event_id", "event_time", "user_id", "context__principal_arn", "context__access_key_id")
    )
    for event_id, at, user_id, arn, key in stored:
        principal = f"user:{user_id}" if user_id is not None else (f"arn:{arn}" if arn else f"key:{key}")
        if principal in undecided:
            timeline[principal][str(event_id)] = at
    drafts = []
    for principal, new_rows in undecided.items():
        events = timeline[principal]
        for row in batch_rows[principal]:  # stored in this transaction, not read back
            events.setdefault(str(row[_ID]), row[_TIME])
        ordered = sorted((at, event_id) for event_id, at in events.items())
        new_by_id = {str(row[_ID]): row for row in new_rows}
        for burst in _bursts(ordered, threshold, window):
            fresh = [new_by_id[event_id] for _, event_id in burst if event_id in new_by_id]
            if not fresh:
                continue
            names = sorted({row[_NAME] for row in fresh})
            draft = _draft(
                Rule.DENIED_BURST,
                Severity.MEDIUM,
                f"denied_burst:{_digest(principal)}:{burst[0][1]}",
                f"{len(burst)} refused calls by {_display(fresh[0])} within "
                f"{settings.ALERT_DENIED_BURST_MINUTES} min ({', '.join(names[:5])})",
                fresh,
                new_events=len(fresh),
                detail={"actions": names[:20]},
            )
            # The burst as a whole, earlier refusals included.
            draft.event_count = len(burst)
            draft.event_ids = [event_id for _, event_id in burst[:SAMPLE_EVENTS]]
            draft.first_event_at, draft.last_event_at = burst[0][0], burst[-1][0]
            drafts.append(draft)
    return drafts


def _bursts(
    events: list[tuple[datetime, str]], threshold: int, window: timedelta
) -> Iterable[list[tuple[datetime, str]]]:
    """Maximal runs of (time, id) events where every event belongs to some window of length `window` holding at
    least `threshold` events; overlapping or touching windows are one burst."""
    start = 0
    burst: tuple[int, int] | None = None
    for end, (at, _) in enumerate(events):
        while at - events[start][0] >= window:
            start += 1
        if end - start + 1 < threshold:
            continue
        if burst is not None and start <= burst[1]:
            burst = (burst[0], end)
        else:
            if burst is not None:
                yield events[burst[0] : burst[1] + 1]
            burst = (start, end)
    if burst is not None:
        yield events[burst[0] : burst[1] + 1]


def _display(row: tuple[Any, ...]) -> str:
    arn = row[_ARN]
    return arn.rsplit("/", 1)[-1] if arn else (row[_KEY] or "an unknown principal")


# --- rule: outside the partner's access window ------------------------------------------------------------------


def outside_window(batch: Batch) -> list[Draft]:
    """Porte sessions of a partner acting outside the partner's access window: one alert per user and local day."""
    if not batch.porte:
        return []
    partner_ids = {row[_PARTNER] for row in batch.porte}
    windows = {
        partner.pk: window
        for partner in Partner.objects.filter(pk__in=partner_ids, access_start__isnull=False)
        if (window := window_for(partner)) is not None
    }
    if not windows:
        return []
    outside: dict[tuple[int, int | None, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in batch.porte:
        window = windows.get(row[_PARTNER])
        if window is not None and not window.contains(row[_TIME]):
            local_day = row[_TIME].astimezone(window.timezone).date().isoformat()
            outside[(row[_PARTNER], row[_USER], local_day)].append(row)
    drafts = []
    for (partner_id, user_id, day), rows in outside.items():
        window = windows[partner_id]
        drafts.append(
            _draft(
                Rule.OUTSIDE_WINDOW,
                Severity.MEDIUM,
                f"outside_window:{partner_id}:{user_id}:{day}",
                f"{_display(rows[0])} acted outside the access window ({window.describe()}) on {day}",
                rows,
                detail={"window": window.describe(), "day": day},
            )
        )
    return drafts


# --- rule: sensitive actions ------------------------------------------------------------------------------------


def sensitive_actions(batch: Batch) -> list[Draft]:
    """Successful IAM, KMS key policy, CloudTrail, S3 bucket policy/ACL changes and security group ingress open to
    the world: one alert per principal per batch of files (a tool making twenty IAM changes is one incident)."""
    found: dict[str, list[tuple[tuple[Any, ...], str]]] = defaultdict(list)
    for row, kind in batch.sensitive:
        found[_principal(row)].append((row, kind))
    drafts = []
    for principal, hits in found.items():
        rows = [row for row, _ in hits]
        kinds = sorted(
            {kind for _, kind in hits}, key=lambda k: _SEVERITY_ORDER.index(_SENSITIVE_SEVERITY[k])
        )
        severity = _SENSITIVE_SEVERITY[kinds[-1]]
        names = sorted({row[_NAME] for row in rows})
        drafts.append(
            _draft(
                Rule.SENSITIVE_ACTION,
                severity,
                f"sensitive_action:{_digest(principal)}:{min(str(row[_ID]) for row in rows)}",
                f"{_display(rows[0])}: {', '.join(names[:5])}{' …' if len(names) > 5 else ''}"
                f" ({', '.join(kinds)})",
                rows,
                detail={"kinds": kinds, "actions": names[:20], "flagged": rows[0][_PARTNER] is not None},
            )
        )
    return drafts


# --- rule: credentials used after their grant ended -------------------------------------------------------------


def after_grant_end(batch: Batch) -> list[Draft]:
    """A successful call by a grant's session after the grant ended: the strongest sign that a deny did not hold.
    The grant's own end (ends_at) is enforced by the session policy with AWS's clock, so it counts to the second;
    an earlier end (revocation) is enforced by the deny Porte puts, which IAM takes a little while to apply."""
    latest = batch.granted_latest  # the common case, every call within its grant, is judged on these alone
    if not latest:
        return []
    propagation = timedelta(seconds=settings.ALERT_DENY_PROPAGATION_SECONDS)
    drafts = []
    for grant_id, ends_at, ended_at in Grant.objects.filter(pk__in=list(latest)).values_list(
        "pk", "ends_at", "ended_at"
    ):
        end = ends_at + timedelta(seconds=1)  # the session policy's cutoff is to the second
        if ended_at is not None:
            end = min(end, ended_at + propagation)
        if latest[grant_id] <= end:
            continue
        rows = [row for row in batch.granted if row[_GRANT] == grant_id and row[_TIME] > end]
        drafts.append(
            _draft(
                Rule.AFTER_GRANT_END,
                Severity.CRITICAL,
                f"after_grant_end:{grant_id}",
                f"Grant #{grant_id} ended at {min(ends_at, ended_at or ends_at):%Y-%m-%d %H:%M:%S} UTC but its "
                f"credentials made {len(rows)} successful call(s) after that ({rows[0][_NAME]} …)",
                rows,
                detail={
                    "ended": (ended_at or ends_at).isoformat(),
                    "actions": sorted({r[_NAME] for r in rows})[:20],
                },
            )
        )
    return drafts


# --- rule: a new source IP for a user ---------------------------------------------------------------------------


def new_source_ips(batch: Batch) -> list[Draft]:
    """A Porte user acting from an IP never seen for them before. A user's first IPs (no history yet) are their
    baseline, not an alert: every new user would otherwise raise one, and alerts that always fire are ignored."""
    unknown = [pair for pair in batch.user_ips if pair not in _SEEN]
    if not unknown:
        return []  # the usual file: the same people from the same places, known to this process already
    users = {user for user, _ in unknown}
    known: dict[int, set[str]] = defaultdict(set)
    for user, ip in SeenSourceIp.objects.filter(user_id__in=users).values_list("user_id", "ip"):
        known[user].add(ip)
    fresh = {pair: batch.user_ips[pair] for pair in unknown if pair[1] not in known[pair[0]]}
    now = timezone.now()
    if fresh:
        SeenSourceIp.objects.bulk_create(
            [SeenSourceIp(user_id=user, ip=ip, first_seen=now) for user, ip in fresh],
            ignore_conflicts=True,
        )
    # Remembered once this transaction commits (a rolled-back batch must find them unknown again).
    remembered = [*unknown]
    transaction.on_commit(lambda: _remember(remembered))
    drafts = []
    for (user, ip), row in fresh.items():
        if not known[user]:
            continue
        drafts.append(
            _draft(
                Rule.NEW_SOURCE_IP,
                Severity.LOW,
                f"new_source_ip:{user}:{ip}",
                f"{_display(row)} acted from {ip}, an address not seen for them before",
                [row],
                detail={"ip": ip, "known_ips": len(known[user])},
            )
        )
    return drafts


# (user, ip) pairs this process knows are stored. Pairs are never removed (but with their user), so what is
# known stays true; bounded, so a long-running worker does not grow without limit.
_SEEN: set[tuple[int, str]] = set()
_SEEN_LIMIT = 100_000


def _remember(pairs: list[tuple[int, str]]) -> None:
    if len(_SEEN) + len(pairs) > _SEEN_LIMIT:
        _SEEN.clear()
    _SEEN.update(pairs)


RULES = (denied_bursts, outside_window, sensitive_actions, after_grant_end, new_source_ips)


def rules_failed(batch: Batch, exc: Exception) -> Draft:
    """The alert that says the rules failed on these events: stored, but not judged."""
    rows = sorted(batch.rows(), key=lambda row: (row[_TIME], str(row[_ID])))
    first, last = rows[0][_TIME], rows[-1][_TIME]
    return Draft(
        rule=Rule.RULES_FAILED,
        severity=Severity.HIGH,
        dedupe_key=f"rules_failed:{rows[0][_ID]}:{len(rows)}",
        summary=(
            f"The alert rules failed on {len(rows)} new events ({first:%Y-%m-%d %H:%M:%S} to "
            f"{last:%Y-%m-%d %H:%M:%S} UTC): they are stored but were not judged ({type(exc).__name__})"
        ),
        event_ids=[str(row[_ID]) for row in rows[:SAMPLE_EVENTS]],
        event_count=len(rows),
        first_event_at=first,
        last_event_at=last,
        principal="porte:alert-rules",
        detail={"error": type(exc).__name__, "message": str(exc)[:500]},
    )
