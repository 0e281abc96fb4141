"""What a reviewer is shown about each access, computed for a whole partner at once.

Every figure comes from a handful of aggregate queries grouped by (person, role) or by person — never one query
per item — and is combined here in memory, so a campaign of a hundred thousand items costs the same few queries
as one of ten. The recommendation is a rule over those figures, stated in words the reviewer can check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Q, Value
from django.db.models.functions import Concat
from parliament import expand_action

from activity.models import ActivityEvent
from grants.models import Eligibility, Grant, Role
from partners.models import Membership, Partner

UNUSED_AFTER = timedelta(days=90)
ADMIN_IDLE_AFTER = timedelta(days=60)
MEMBER_IDLE_AFTER = timedelta(days=90)
# Suggest narrowing when fewer than this share of the role's allowed actions were used in the period.
NARROW_BELOW = 0.5
# Errors that mean the call was refused: the action was tried, not used.
_REFUSED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Client.UnauthorizedOperation")
# CloudTrail event sources whose IAM service prefix is not the host name's first label.
_PREFIX_BY_SOURCE = {
    "monitoring.amazonaws.com": "cloudwatch",
    "email.amazonaws.com": "ses",
    "s3-control.amazonaws.com": "s3",
    "elasticloadbalancing.amazonaws.com": "elasticloadbalancing",
    "signin.amazonaws.com": "signin",
}


def iam_action(event_source: str, event_name: str) -> str:
    """The IAM action a CloudTrail event exercised (eventName is the API operation, named as the action)."""
    prefix = _PREFIX_BY_SOURCE.get(event_source) or event_source.split(".", 1)[0]
    return f"{prefix}:{event_name}"


def allowed_actions(policy: dict[str, Any]) -> list[str]:
    """Every IAM action the policy's Allow statements name, wildcards expanded with parliament's catalogue."""
    actions: set[str] = set()
    statements = policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if statement.get("Effect") != "Allow":
            continue
        patterns = statement.get("Action", [])
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            try:
                expanded = expand_action(pattern, raise_exceptions=True)
            except Exception:
                expanded = []
            if expanded:
                actions.update(f"{a['service']}:{a['action']}" for a in expanded)
            else:
                actions.add(pattern)  # unknown to the catalogue: counted as written
    return sorted(actions, key=str.lower)


@dataclass
class Usage:
    """How one person (or a group's members together) used one role, or Porte as a whole."""

    last_activity_at: datetime | None = None
    grants_in_period: int = 0
    last_grant_at: datetime | None = None
    last_grant_ever_at: datetime | None = None
    actions: set[str] = field(default_factory=set)

    def add(self, other: Usage) -> None:
        self.last_activity_at = latest(self.last_activity_at, other.last_activity_at)
        self.grants_in_period += other.grants_in_period
        self.last_grant_at = latest(self.last_grant_at, other.last_grant_at)
        self.last_grant_ever_at = latest(self.last_grant_ever_at, other.last_grant_ever_at)
        self.actions |= other.actions

    @property
    def last_used_at(self) -> datetime | None:
        return latest(self.last_activity_at, self.last_grant_ever_at)


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


@dataclass
class PartnerFacts:
    """Everything the evidence of a partner's campaign needs, read with a few grouped queries."""

    members: list[dict[str, Any]]
    eligibilities: list[dict[str, Any]]
    roles: dict[int, dict[str, Any]]
    by_user_role: dict[tuple[int, int], Usage]
    by_user: dict[int, Usage]


def partner_facts(partner: Partner, *, period_start: datetime, period_end: datetime) -> PartnerFacts:
    in_period = Q(starts_at__gte=period_start, starts_at__lt=period_end)
    members: list[dict[str, Any]] = [
        dict(row)
        for row in Membership.objects.filter(partner=partner, is_active=True)
        .order_by("user_id")
        .values(
            "id",
            "user_id",
            "is_partner_admin",
            "is_workload",
            "groups",
            "last_sign_in_at",
            "user__username",
            "user__email",
            "user__first_name",
            "user__last_name",
        )
    ]
    eligibilities: list[dict[str, Any]] = [
        dict(row)
        for row in Eligibility.objects.filter(role__partner=partner)
        .order_by("role_id", "group", "user_id")
        .values(
            "id",
            "role_id",
            "user_id",
            "group",
            "user__username",
            "user__email",
            "user__first_name",
            "user__last_name",
        )
    ]
    roles: dict[int, dict[str, Any]] = {}
    for r in Role.objects.filter(partner=partner).values("id", "slug", "name", "inline_policy"):
        allowed = allowed_actions(r["inline_policy"])
        roles[r["id"]] = {
            "slug": r["slug"],
            "name": r["name"],
            "allowed": allowed,
            "allowed_lower": frozenset(a.lower() for a in allowed),
        }
    by_user_role: dict[tuple[int, int], Usage] = defaultdict(Usage)
    by_user: dict[int, Usage] = defaultdict(Usage)
    grant_rows = (
        Grant.objects.filter(role__partner=partner)
        .values("user_id", "role_id")
        .annotate(
            in_period=Count("id", filter=in_period),
            last_in_period=Max("starts_at", filter=in_period),
            last_ever=Max("starts_at", filter=Q(starts_at__lt=period_end)),
        )
        .order_by()
    )
    for grants in grant_rows:
        usage = by_user_role[(grants["user_id"], grants["role_id"])]
        usage.grants_in_period = grants["in_period"]
        usage.last_grant_at = grants["last_in_period"]
        usage.last_grant_ever_at = grants["last_ever"]
    # One pass over the partner's attributed events: per (person, role), when it was last called and which
    # actions were used (called and not refused) in the period.
    used_in_period = Q(event_time__gte=period_start, event_time__lt=period_end) & ~Q(error_code__in=_REFUSED)
    # Nothing after the period's end counts: the evidence is what was known when the review opened, and must agree
    # with itself (no "last activity" after the period, no call counted as last but not as used).
    before_end = ActivityEvent.objects.filter(partner=partner, user__isnull=False, event_time__lt=period_end)
    events = before_end.filter(grant__isnull=False)
    if connection.vendor == "postgresql":
        from django.contrib.postgres.aggregates import ArrayAgg

        # The server collects each pair's distinct actions: one row per (person, role) comes back, not one per
        # action, which is most of the cost of reading (parsing) the rows here.
        per_pair = (
            events.values_list("user_id", "grant__role_id")
            .annotate(
                last=Max("event_time"),
                used=ArrayAgg(
                    Concat("action__event_source", Value(":"), "action__event_name"),
                    distinct=True,
                    filter=used_in_period,
                    default=Value([]),
                ),
            )
            .order_by()
        )
        for user_id, role_id, last, used in per_pair:
            usage = by_user_role[(user_id, role_id)]
            usage.last_activity_at = last
            usage.actions.update(iam_action(*pair.split(":", 1)) for pair in used)
    else:
        per_action = (
            events.values_list("user_id", "grant__role_id", "action__event_source", "action__event_name")
            .annotate(last=Max("event_time"), used=Count("pk", filter=used_in_period))
            .order_by()
        )
        for user_id, role_id, source, name, last, count in per_action:
            usage = by_user_role[(user_id, role_id)]
            usage.last_activity_at = latest(usage.last_activity_at, last)
            if count:
                usage.actions.add(iam_action(source, name))
    for (user_id, _), usage in by_user_role.items():
        by_user[user_id].add(usage)
    # Activity of a person outside any grant (attributed by SourceIdentity alone) still counts as their last.
    for row in (
        before_end.filter(grant__isnull=True).values("user_id").annotate(last=Max("event_time")).order_by()
    ):
        by_user[row["user_id"]].last_activity_at = latest(
            by_user[row["user_id"]].last_activity_at, row["last"]
        )
    return PartnerFacts(members, eligibilities, roles, dict(by_user_role), dict(by_user))


# --- recommendations ---------------------------------------------------------------------------------------------


def _days(since: datetime, now: datetime) -> int:
    return max(0, (now - since).days)


def recommend_role_access(usage: Usage, allowed_lower: AbstractSet[str], *, now: datetime) -> tuple[str, str]:
    """(keep | revoke | narrow, why) for an eligibility, from how the role was used (`allowed_lower`: the role's
    allowed actions, lower-cased, as IAM compares them)."""
    last_used = usage.last_used_at
    if last_used is None:
        return "revoke", "never used: revoke"
    if now - last_used >= UNUSED_AFTER:
        return "revoke", f"unused for {_days(last_used, now)} days: revoke"
    if allowed_lower and usage.actions:
        used = len({a.lower() for a in usage.actions} & allowed_lower)
        if used < len(allowed_lower) * NARROW_BELOW:
            return "narrow", f"uses {used} of {len(allowed_lower)} allowed actions: narrow"
    return "keep", "in use: keep"


def recommend_membership(last_sign_in_at: datetime | None, usage: Usage, *, now: datetime) -> tuple[str, str]:
    last_seen = latest(last_sign_in_at, usage.last_used_at)
    if last_seen is None:
        return "revoke", "never signed in: revoke"
    if now - last_seen >= MEMBER_IDLE_AFTER:
        return "revoke", f"no sign-in or activity for {_days(last_seen, now)} days: revoke"
    return "keep", "active: keep"


def recommend_admin(last_sign_in_at: datetime | None, *, now: datetime) -> tuple[str, str]:
    if last_sign_in_at is None:
        return "revoke", "admin who never signed in: revoke admin"
    if now - last_sign_in_at >= ADMIN_IDLE_AFTER:
        return "revoke", f"admin without sign-in for {_days(last_sign_in_at, now)} days: revoke admin"
    return "keep", "active admin: keep"
