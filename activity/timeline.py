"""A grant's timeline: its lifecycle (requested, approved, activated, sessions issued, extended, revoked or
expired — from its rows and the audit log) told together with everything done under it (its events), in the
order it happened. Events are paged by keyset, oldest first; each page carries the lifecycle steps that fall
between its first and its last event, so every step appears exactly once across the pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from activity.access import activity_visible_to
from activity.rows import EventRow, event_rows
from activity.selectors import Keyset, activity_page, grant_events
from grants.models import CredentialIssue, Grant
from portal.models import AuditEvent, User

TIMELINE_PAGE_SIZE = 50
# What the audit log's actions mean on a grant's timeline; any other action is shown by its name.
_STEPS = {
    "request.approved": "Approved",
    "request.denied": "Denied",
    "grant.activated": "Activated",
    "grant.activation_retry": "Activation retried",
    "grant.failed": "Activation failed",
    "grant.extended": "Extended",
    "grant.revoke_requested": "Revocation requested",
    "grant.revoked": "Revoked",
    "grant.expired": "Expired",
}
# Shown from their own rows (with more to say than the audit event): not repeated from the log.
_FROM_ROWS = {"request.created", "grant.created", "credential.issued"}


@dataclass(frozen=True)
class Step:
    at: datetime
    title: str
    detail: str = ""
    actor: str = ""


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    step: Step | None = None
    row: EventRow | None = None


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    next: Keyset | None


def grant_lifecycle(grant: Grant) -> list[Step]:
    request = grant.request
    # The justification itself heads the grant's page, right above the timeline.
    minutes = int(request.requested_duration.total_seconds() // 60)
    steps = [Step(request.created_at, "Requested", f"for {minutes} minutes", grant.user.display_name)]
    for issue in CredentialIssue.objects.filter(grant=grant).order_by("issued_at"):
        steps.append(
            Step(
                issue.issued_at,
                f"{issue.get_kind_display()} session issued",
                f"access key {issue.access_key_id}, valid until {issue.expires_at:%Y-%m-%d %H:%M:%S} UTC",
                grant.user.display_name,
            )
        )
    audit = (
        AuditEvent.objects.filter(
            Q(object_type="grants.grant", object_id=str(grant.pk))
            | Q(object_type="grants.accessrequest", object_id=str(request.pk))
        )
        .exclude(action__in=_FROM_ROWS)
        .order_by("id")[:500]
    )
    actors = User.objects.in_bulk({a.actor_id for a in audit if a.actor_id is not None})
    for entry in audit:
        actor = actors.get(entry.actor_id) if entry.actor_id is not None else None
        steps.append(
            Step(
                entry.at,
                _STEPS.get(entry.action, entry.action),
                _detail(entry.action, entry.data),
                actor.display_name if actor else "Porte",
            )
        )
    return sorted(steps, key=lambda step: step.at)


def _detail(action: str, data: dict[str, object]) -> str:
    if action == "grant.extended":
        return (
            f"until {str(data.get('to', ''))[:19].replace('T', ' ')} UTC: “{data.get('justification', '')}”"
        )
    if action == "request.approved":
        return "by policy (automatic)" if data.get("policy") == "auto" else ""
    if action in {"grant.revoke_requested", "grant.revoked"} and data.get("reason"):
        return f"“{data['reason']}”"
    if action in {"grant.failed", "grant.activation_retry"} and data.get("reason"):
        return str(data["reason"])
    return ""


def grant_timeline(
    user: User, grant: Grant, *, after: Keyset | None = None, size: int = TIMELINE_PAGE_SIZE
) -> TimelinePage:
    """One page of `grant`'s timeline as `user` may see it (the caller checked the grant with grant_for_user)."""
    events = grant_events(activity_visible_to(user), grant.pk)
    page = activity_page(events, after=after, size=size, oldest_first=True)
    start = after.event_time if after else None
    end = page.events[-1].event_time if page.next and page.events else None
    steps = [
        step
        for step in grant_lifecycle(grant)
        if (start is None or step.at > start) and (end is None or step.at <= end)
    ]
    entries = [TimelineEntry(s.at, step=s) for s in steps]
    entries += [TimelineEntry(row.event.event_time, row=row) for row in event_rows(page.events)]
    # Stable: at the same instant, the lifecycle step (e.g. the session issued) comes before what was done with it.
    entries.sort(key=lambda entry: (entry.at, entry.row is not None))
    return TimelinePage(entries, page.next)
