"""The guide's "Measuring Success" figures, per day for the last 30 days: unauthorized access attempts, policy
violations, security incidents, time to revoke, access request processing time, availability.

Counts are aggregated in SQL (one grouped query per figure, on indexed columns: activity by its time and the
partial index on errors, audit events by action and time). Durations come from grants and requests — a few
per person per day — and their percentiles are taken here. The whole is cached briefly (see `figures()`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from activity import progress
from activity.alerts.rules import DENIED_Q
from activity.models import ActivityEvent, Alert, QuarantinedObject, hour_of
from grants.models import Grant
from portal.audit import unsealed
from portal.models import AuditEvent, HealthSample

DAYS = 30
VIOLATION_RULES = (Alert.Rule.OUTSIDE_WINDOW, Alert.Rule.AFTER_GRANT_END, Alert.Rule.SENSITIVE_ACTION)
CACHE_KEY = "porte:metrics:figures:v1"


@dataclass
class Series:
    """One figure, a value per day (None: nothing to measure that day), and its value over the whole period."""

    key: str
    label: str
    unit: str  # "count", "seconds" or "ratio"
    values: Sequence[float | None]
    total: float | None
    help: str = ""


@dataclass
class Figures:
    days: list[date]
    computed_at: datetime
    series: dict[str, Series] = field(default_factory=dict)
    # Breakdowns of the period's totals, for /metrics labels.
    alerts_by_rule: dict[tuple[str, str], int] = field(default_factory=dict)  # (rule, severity) -> count
    open_alerts: dict[str, int] = field(default_factory=dict)  # severity -> count
    health_samples: int = 0
    # (stage, quantile) -> seconds over the period: "approval" is request to approval, "total" request to active.
    request_stages: dict[tuple[str, str], float | None] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Series:
        return self.series[key]


def figures(*, now: datetime | None = None, cached: bool = True) -> Figures:
    """The figures, computed at most once per METRICS_CACHE_SECONDS (pages and scrapes share them)."""
    if not cached or now is not None:
        return compute(now=now)
    found = cache.get(CACHE_KEY)
    if isinstance(found, Figures):
        return found
    computed = compute()
    cache.set(CACHE_KEY, computed, timeout=settings.METRICS_CACHE_SECONDS)
    return computed


def compute(*, now: datetime | None = None) -> Figures:
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    since = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
    result = Figures(days=days, computed_at=now)

    def add(
        key: str, label: str, unit: str, values: Sequence[float | None], total: float | None, help: str
    ) -> None:
        result.series[key] = Series(key, label, unit, values, total, help)

    refused = _daily_counts(
        AuditEvent.objects.filter(action="signin.refused", at__gte=since, at__lte=now), "at", days
    )
    denied = _daily_hour_counts(
        ActivityEvent.objects.filter(hour__gte=hour_of(since), hour__lte=hour_of(now))
        .exclude(error_code="")  # the small partial index on errors by hour (read alone: an index-only scan)
        .filter(DENIED_Q),
        days,
    )
    add("signins_refused", "Refused sign-ins", "count", refused, sum(refused), "Sign-ins Porte refused.")
    add(
        "access_denied",
        "Refused AWS calls",
        "count",
        denied,
        sum(denied),
        "AccessDenied-type errors in CloudTrail.",
    )
    attempts = [a + b for a, b in zip(refused, denied, strict=True)]
    add(
        "unauthorized_attempts",
        "Unauthorized access attempts",
        "count",
        attempts,
        sum(attempts),
        "Refused sign-ins plus refused AWS calls.",
    )

    alerts = Alert.objects.filter(created_at__gte=since, created_at__lte=now)
    violations = _daily_counts(alerts.filter(rule__in=VIOLATION_RULES), "created_at", days)
    # The rules' own failure is an operational alert, not an incident (it is in the breakdown by rule).
    incidents = _daily_counts(alerts.exclude(rule=Alert.Rule.RULES_FAILED), "created_at", days)
    add(
        "policy_violations",
        "Policy violations",
        "count",
        violations,
        sum(violations),
        "Alerts of activity outside the access window, after a grant ended, or sensitive actions.",
    )
    add(
        "security_incidents",
        "Security incidents",
        "count",
        incidents,
        sum(incidents),
        "Alerts raised (but for the rules' own failures).",
    )
    result.alerts_by_rule = {
        (rule, severity): count
        for rule, severity, count in alerts.values_list("rule", "severity").annotate(n=Count("id")).order_by()
    }
    result.open_alerts = dict(
        Alert.objects.filter(acknowledged_at__isnull=True)
        .values_list("severity")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("severity", "n")
    )

    revoke = _time_to_revoke(since, now)
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        add(
            f"time_to_revoke_{name}",
            f"Time to revoke ({name})",
            "seconds",
            _daily_percentile(revoke, days, q),
            percentile([v for _, v in revoke], q),
            "From the end of a grant (or the revocation request) to the deny put on its role.",
        )
    processing = _request_processing(since, now)
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        add(
            f"request_processing_{name}",
            f"Access request processing ({name})",
            "seconds",
            _daily_percentile([(day, total) for day, _, total in processing], days, q),
            percentile([total for _, _, total in processing], q),
            "From the request to active access (approval, then activation).",
        )
    stages = {"approval": [p[1] for p in processing], "total": [p[2] for p in processing]}
    result.request_stages = {
        (stage, name): percentile(values, q)
        for stage, values in stages.items()
        for q, name in ((0.5, "0.5"), (0.95, "0.95"))
    }

    availability, samples = _availability(since, now, days)
    result.health_samples = sum(samples)
    ok_total = sum((ratio or 0) * n for ratio, n in zip(availability, samples, strict=True))
    add(
        "availability",
        "Availability",
        "ratio",
        availability,
        ok_total / result.health_samples if result.health_samples else None,
        "Share of health checks that passed.",
    )
    return result


def _daily_counts(queryset: QuerySet[Any], column: str, days: list[date]) -> list[float]:
    by_day = dict(
        queryset.annotate(day=TruncDate(column, tzinfo=UTC))
        .values("day")
        .annotate(n=Count("*"))
        .order_by()
        .values_list("day", "n")
    )
    return [float(by_day.get(day, 0)) for day in days]


def _daily_hour_counts(events: QuerySet[ActivityEvent], days: list[date]) -> list[float]:
    """As `_daily_counts`, for events, by the day of their hour (UTC)."""
    epoch = date(1970, 1, 1)
    by_day = dict(
        events.annotate(day=F("hour") / 24)
        .values("day")
        .annotate(n=Count("*"))
        .order_by()
        .values_list("day", "n")
    )
    return [float(by_day.get((day - epoch).days, 0)) for day in days]


def _time_to_revoke(since: datetime, now: datetime) -> list[tuple[date, float]]:
    """(day the deny was put, seconds) for every grant that was in use and ended in the period: an expiry is
    measured from `ends_at`, a revocation from its request (`claimed_at`, set when it was asked)."""
    rows = Grant.objects.filter(ended_at__gte=since, ended_at__lte=now, activated_at__isnull=False).filter(
        Q(status=Grant.Status.EXPIRED) | Q(status=Grant.Status.REVOKED, claimed_at__isnull=False)
    )
    measured = []
    for status, ends_at, claimed_at, ended_at in rows.values_list(
        "status", "ends_at", "claimed_at", "ended_at"
    ):
        start = ends_at if status == Grant.Status.EXPIRED else claimed_at
        if start is None or ended_at is None:
            continue
        measured.append((ended_at.astimezone(UTC).date(), max(0.0, (ended_at - start).total_seconds())))
    return measured


def _request_processing(since: datetime, now: datetime) -> list[tuple[date, float, float]]:
    """(day access became active, request → approval seconds, request → active seconds) per grant."""
    rows = Grant.objects.filter(activated_at__gte=since, activated_at__lte=now).values_list(
        "request__created_at", "request__decided_at", "activated_at"
    )
    measured = []
    for created, decided, activated in rows:
        if activated is None:
            continue
        approval = (decided - created).total_seconds() if decided else 0.0
        measured.append(
            (
                activated.astimezone(UTC).date(),
                max(0.0, approval),
                max(0.0, (activated - created).total_seconds()),
            )
        )
    return measured


def _availability(since: datetime, now: datetime, days: list[date]) -> tuple[list[float | None], list[int]]:
    by_day = {
        day: (ok, n)
        for day, ok, n in HealthSample.objects.filter(at__gte=since, at__lte=now)
        .annotate(day=TruncDate("at", tzinfo=UTC))
        .values("day")
        .annotate(ok=Count("pk", filter=Q(ok=True)), n=Count("pk"))
        .order_by()
        .values_list("day", "ok", "n")
    }
    ratios: list[float | None] = []
    samples = []
    for day in days:
        ok, n = by_day.get(day, (0, 0))
        ratios.append(ok / n if n else None)
        samples.append(n)
    return ratios, samples


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (as PostgreSQL's percentile_cont); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _daily_percentile(measured: list[tuple[date, float]], days: list[date], q: float) -> list[float | None]:
    by_day: dict[date, list[float]] = defaultdict(list)
    for day, value in measured:
        by_day[day].append(value)
    return [percentile(by_day.get(day, []), q) for day in days]


# --- Prometheus text exposition -----------------------------------------------------------------------------------


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float | None) -> str:
    if value is None:
        return "NaN"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self, name: str, kind: str, help: str, samples: list[tuple[dict[str, str], float | None]]
    ) -> None:
        self.lines.append(f"# HELP {name} {_help(help)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{key}="{_label(str(val))}"' for key, val in labels.items())
            self.lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def prometheus_text(f: Figures) -> str:
    """The figures in Prometheus' text format (version 0.0.4): the period's totals and today's values."""
    out = _Exposition()
    windows = (("30d", lambda s: s.total), ("1d", lambda s: s.values[-1]))

    def both(key: str, **labels: str) -> list[tuple[dict[str, str], float | None]]:
        return [({**labels, "window": window}, pick(f[key])) for window, pick in windows]

    out.metric(
        "porte_unauthorized_access_attempts",
        "gauge",
        "Refused sign-ins (source=signin) and refused AWS calls (source=aws) in the window.",
        both("signins_refused", source="signin") + both("access_denied", source="aws"),
    )
    out.metric(
        "porte_policy_violations",
        "gauge",
        "Alerts for activity outside the access window, after a grant ended, or sensitive actions.",
        both("policy_violations"),
    )
    out.metric(
        "porte_security_incidents", "gauge", "Alerts raised in the window.", both("security_incidents")
    )
    out.metric(
        "porte_alerts",
        "gauge",
        f"Alerts raised in the last {DAYS} days, by rule and severity.",
        [
            ({"rule": rule, "severity": severity, "window": "30d"}, count)
            for (rule, severity), count in sorted(f.alerts_by_rule.items())
        ],
    )
    out.metric(
        "porte_alerts_open",
        "gauge",
        "Alerts not acknowledged yet, by severity.",
        [({"severity": severity}, f.open_alerts.get(severity, 0)) for severity in Alert.Severity.values],
    )
    out.metric(
        "porte_time_to_revoke_seconds",
        "gauge",
        "From a grant's end (or its revocation request) to the deny put on its role.",
        [
            ({"quantile": q, "window": window}, pick(f[f"time_to_revoke_{name}"]))
            for q, name in (("0.5", "p50"), ("0.95", "p95"))
            for window, pick in windows
        ],
    )
    out.metric(
        "porte_access_request_processing_seconds",
        "gauge",
        f"From an access request to its approval (stage=approval) or to active access (stage=total), last {DAYS} days.",
        [
            ({"stage": stage, "quantile": q, "window": "30d"}, v)
            for (stage, q), v in sorted(f.request_stages.items())
        ],
    )
    out.metric(
        "porte_availability_ratio",
        "gauge",
        "Share of recorded health checks that passed.",
        both("availability"),
    )
    out.metric(
        "porte_health_samples",
        "gauge",
        f"Health checks recorded in the last {DAYS} days.",
        [({"window": "30d"}, f.health_samples)],
    )
    out.metric(
        "porte_metrics_computed_timestamp_seconds",
        "gauge",
        "When these figures were computed (they are cached briefly).",
        [({}, f.computed_at.timestamp())],
    )
    return out.text()


def audit_tail_text() -> str:
    """The audit chain's unsealed tail, live (not cached): it should stay a few seconds long."""
    tail = unsealed()
    out = _Exposition()
    out.metric(
        "porte_audit_unsealed_events",
        "gauge",
        "Audit events committed but not sealed yet.",
        [({}, tail.events)],
    )
    out.metric(
        "porte_audit_unsealed_oldest_seconds",
        "gauge",
        "Age of the oldest audit event not sealed yet (0 when none).",
        [({}, tail.oldest_age.total_seconds() if tail.oldest_age else 0.0)],
    )
    return out.text()


def ingestion_text(*, now: datetime | None = None) -> str:
    """Where trail ingestion stands per partner account and region, live (activity/progress.py)."""
    statuses = [status for status in progress.prefix_statuses(now=now) if status.in_scope]
    out = _Exposition()

    def per_prefix(
        value: Callable[[progress.PrefixStatus], float | None],
    ) -> list[tuple[dict[str, str], float | None]]:
        """One sample per account and region that has a value."""
        samples = (({"account": s.account, "region": s.region}, value(s)) for s in statuses)
        return [sample for sample in samples if sample[1] is not None]

    out.metric(
        "porte_activity_prefix_lag_seconds",
        "gauge",
        "Age of the newest log file ingested, per partner account and region (absent: none yet).",
        per_prefix(lambda s: s.lag.total_seconds() if s.lag is not None else None),
    )
    out.metric(
        "porte_activity_prefix_listed_timestamp_seconds",
        "gauge",
        "When the account and region's folder of the trail was last listed successfully.",
        per_prefix(lambda s: s.cursor.listed_at.timestamp() if s.cursor.listed_at else None),
    )
    out.metric(
        "porte_activity_prefix_stalled",
        "gauge",
        "1 when objects in the folder waited, or it was not listed, longer than PORTE_ACTIVITY_LAG_WARN_MINUTES.",
        per_prefix(lambda s: 1.0 if s.stalled_since else 0.0),
    )
    out.metric(
        "porte_activity_prefix_not_log_files",
        "gauge",
        "Objects in the folder that are not CloudTrail log files (recorded, never read as logs).",
        per_prefix(lambda s: float(s.cursor.not_log_files)),
    )
    open_by_reason = dict(
        QuarantinedObject.objects.filter(resolved=False)
        .values_list("reason")
        .annotate(count=Count("pk"))
        .values_list("reason", "count")
    )
    out.metric(
        "porte_activity_quarantined_open",
        "gauge",
        "Trail objects in quarantine, not resolved yet, by reason.",
        [({"reason": reason}, open_by_reason.get(reason, 0)) for reason in QuarantinedObject.Reason.values],
    )
    return out.text()
