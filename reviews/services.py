"""Access review campaigns: start (scheduled or on demand), decide, remind, enforce the deadline.

Every change is audited in its transaction. The deadline is crash-safe and idempotent: each item is settled in
a transaction of its own and only if still undecided, and the campaign is closed (and everyone told) once, by a
conditional update; a re-run after a crash finishes what is left and repeats nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from grants.services import revocation
from partners import services as partner_services
from partners.models import Membership, Partner
from portal.access import actor_of
from portal.audit import audit_record
from portal.models import User
from portal.notifications import notify, staff_addresses
from reviews import evidence
from reviews.models import (
    DeadlineAction,
    ReviewCampaign,
    ReviewerMode,
    ReviewItem,
    ReviewSettings,
)

log = logging.getLogger(__name__)

REMINDER_DAYS = (3, 1)
MIN_COMMENT = 5


def review_settings_for(partner: Partner) -> ReviewSettings:
    """The partner's review settings (unsaved defaults when it has none)."""
    return ReviewSettings.objects.filter(partner=partner).first() or ReviewSettings(partner=partner)


@transaction.atomic
def review_settings_update(
    *,
    partner: Partner,
    interval: timedelta,
    reviewer: str,
    response_time: timedelta,
    on_deadline: str,
    actor: User | None = None,
) -> ReviewSettings:
    errors: dict[str, str] = {}
    if interval < timedelta(days=7):
        errors["interval"] = "Review at most once a week (an interval of 7 days or more)."
    if response_time < timedelta(days=1):
        errors["response_time"] = "Give reviewers at least one day."
    elif response_time >= interval:
        errors["response_time"] = "Reviewers must answer before the next review starts."
    if reviewer not in ReviewerMode.values:
        errors["reviewer"] = "Choose who reviews."
    if on_deadline not in DeadlineAction.values:
        errors["on_deadline"] = "Choose what happens at the deadline."
    if errors:
        raise ValidationError(errors)
    settings, _ = ReviewSettings.objects.select_for_update(of=("self",), no_key=True).get_or_create(
        partner=partner
    )
    settings.interval, settings.reviewer = interval, reviewer
    settings.response_time, settings.on_deadline = response_time, on_deadline
    settings.save()
    audit_record(
        action="review.settings_updated",
        obj=settings,
        actor=actor,
        partner_id=partner.pk,
        data={
            "interval_days": interval.days,
            "reviewer": reviewer,
            "response_days": response_time.days,
            "on_deadline": on_deadline,
        },
    )
    return settings


# --- start ------------------------------------------------------------------------------------------------------


def _name(row: dict[str, Any], prefix: str = "user__") -> str:
    full = f"{row.get(prefix + 'first_name') or ''} {row.get(prefix + 'last_name') or ''}".strip()
    return full or row.get(prefix + "email") or row.get(prefix + "username") or "?"


_ROW_FIELDS = (
    "kind",
    "assignee",
    "subject_id",
    "role_id",
    "group",
    "eligibility_id",
    "label",
    "last_sign_in_at",
    "last_activity_at",
    "grants_in_period",
    "last_grant_at",
    "actions_used",
    "actions_allowed_count",
    "recommended",
    "recommendation",
)
ItemRow = tuple[Any, ...]


def _item_rows(campaign: ReviewCampaign, facts: evidence.PartnerFacts, now: datetime) -> list[ItemRow]:
    """Every question of the campaign with its evidence (in `_ROW_FIELDS` order), from the partner's facts: no
    query here, and plain tuples rather than model instances (a hundred thousand of those cost seconds)."""
    members = {m["user_id"]: m for m in facts.members}
    admins = {user_id for user_id, m in members.items() if m["is_partner_admin"]}
    by_admins = campaign.reviewer == ReviewerMode.PARTNER_ADMINS and bool(admins)
    sponsor, partner_admins = ReviewItem.Assignee.SPONSOR.value, ReviewItem.Assignee.PARTNER_ADMINS.value

    def assignee(subject_id: int | None) -> str:
        # Partner admins never review their own access: items about any of them go to the sponsor.
        return partner_admins if by_admins and subject_id not in admins else sponsor

    rows: list[ItemRow] = []
    none = evidence.Usage()
    for e in facts.eligibilities:
        role = facts.roles[e["role_id"]]
        if e["user_id"] is not None:
            usage = facts.by_user_role.get((e["user_id"], e["role_id"]), none)
            member = members.get(e["user_id"])
            last_sign_in = member["last_sign_in_at"] if member else None
            kind = ReviewItem.Kind.ELIGIBILITY.value
            label = f"{_name(e)} may request {role['name']}"
        else:
            usage = evidence.Usage()
            last_sign_in = None
            for m in facts.members:
                if e["group"] in (m["groups"] or []):
                    usage.add(facts.by_user_role.get((m["user_id"], e["role_id"]), none))
                    last_sign_in = evidence.latest(last_sign_in, m["last_sign_in_at"])
            kind = ReviewItem.Kind.GROUP_ELIGIBILITY.value
            label = f"IdP group {e['group']} may request {role['name']}"
        recommended, why = evidence.recommend_role_access(usage, role["allowed_lower"], now=now)
        rows.append(
            (
                kind,
                assignee(e["user_id"]),
                e["user_id"],
                e["role_id"],
                e["group"],
                e["id"],
                label[:300],
                last_sign_in,
                usage.last_activity_at,
                usage.grants_in_period,
                usage.last_grant_at,
                sorted(usage.actions, key=str.lower),
                len(role["allowed"]),
                recommended,
                why,
            )
        )
    for user_id, m in members.items():
        usage = facts.by_user.get(user_id, none)
        recommended, why = evidence.recommend_membership(m["last_sign_in_at"], usage, now=now)
        evidence_columns = (
            m["last_sign_in_at"],
            usage.last_activity_at,
            usage.grants_in_period,
            usage.last_grant_at,
            sorted(usage.actions, key=str.lower),
            0,
        )
        rows.append(
            (
                ReviewItem.Kind.MEMBERSHIP.value,
                assignee(user_id),
                user_id,
                None,
                "",
                None,
                (
                    f"Pipeline {m['user__last_name']} may use {campaign.partner.name}'s Porte access"
                    if m["is_workload"]
                    else f"{_name(m)} is a member of {campaign.partner.name}"
                )[:300],
                *evidence_columns,
                recommended,
                why,
            )
        )
        if m["is_partner_admin"]:
            recommended, why = evidence.recommend_admin(m["last_sign_in_at"], now=now)
            rows.append(
                (
                    ReviewItem.Kind.ADMIN.value,
                    sponsor,  # admin status is never reviewed by the admins themselves
                    user_id,
                    None,
                    "",
                    None,
                    f"{_name(m)} is a partner admin of {campaign.partner.name}"[:300],
                    *evidence_columns,
                    recommended,
                    why,
                )
            )
    return rows


def _insert(campaign: ReviewCampaign, rows: Sequence[ItemRow]) -> None:
    """Insert the items in bulk: COPY on PostgreSQL, batched INSERTs elsewhere (the embedded SQLite)."""
    if connection.vendor != "postgresql":
        ReviewItem.objects.bulk_create(
            [ReviewItem(campaign=campaign, **dict(zip(_ROW_FIELDS, row, strict=True))) for row in rows],
            batch_size=500,
        )
        return
    import orjson

    table = ReviewItem._meta.db_table
    fields = ("campaign_id", *_ROW_FIELDS, "decision", "comment", "by_deadline", "escalated")
    columns = ", ".join(f'"{ReviewItem._meta.get_field(f.removesuffix("_id")).column}"' for f in fields)  # type: ignore[union-attr]
    used = _ROW_FIELDS.index("actions_used")
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own cursor: Django's wrapper has no copy()
        with cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                # COPY's text format: the server parses the JSON text into jsonb itself.
                copy.write_row(
                    (
                        campaign.pk,
                        *row[:used],
                        orjson.dumps(row[used]).decode(),
                        *row[used + 1 :],
                        "",
                        "",
                        False,
                        False,
                    )
                )


@transaction.atomic
def review_campaign_start(
    *,
    partner: Partner,
    kind: str = ReviewCampaign.Kind.ON_DEMAND,
    actor: User | None = None,
    reviewer: str | None = None,
    on_deadline: str | None = None,
    now: datetime | None = None,
) -> ReviewCampaign:
    """Open a review of everything the partner's people hold, evidence frozen as of now; tell the reviewers."""
    now = now or timezone.now()
    partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
    if partner.status == Partner.Status.OFFBOARDED:
        raise ValidationError(
            {"partner": f"{partner.name} is offboarded: there is no access left to review."}
        )
    if ReviewCampaign.objects.filter(partner=partner, status=ReviewCampaign.Status.OPEN).exists():
        raise ValidationError({"partner": f"{partner.name} has a review open already: finish it first."})
    settings = review_settings_for(partner)
    previous_end = ReviewCampaign.objects.filter(partner=partner).aggregate(end=Max("period_end"))["end"]
    period_start = min(previous_end or now - settings.interval, now)
    campaign = ReviewCampaign.objects.create(
        partner=partner,
        kind=kind,
        reviewer=reviewer or settings.reviewer,
        on_deadline=on_deadline or settings.on_deadline,
        period_start=period_start,
        period_end=now,
        started_at=now,
        started_by=actor,
        deadline=now + settings.response_time,
    )
    facts = evidence.partner_facts(partner, period_start=period_start, period_end=now)
    campaign.roles = {
        str(role_id): {"slug": role["slug"], "name": role["name"], "allowed": role["allowed"]}
        for role_id, role in facts.roles.items()
    }
    campaign.save(update_fields=["roles"])
    items = _item_rows(campaign, facts, now)
    _insert(campaign, items)
    audit_record(
        action="review.started",
        obj=campaign,
        actor=actor,
        partner_id=partner.pk,
        data={
            "kind": kind,
            "items": len(items),
            "reviewer": campaign.reviewer,
            "deadline": campaign.deadline.isoformat(),
            "period": [period_start.isoformat(), now.isoformat()],
        },
    )
    notify(
        event="review.started",
        subject=f"Access review of {partner.name}: {len(items)} items, due {campaign.deadline:%Y-%m-%d}",
        body=(
            f"An access review of {partner.name} has started. Decide for each item whether the access stays "
            f"(keep), goes (revoke) or should be reduced (narrow) before {campaign.deadline:%Y-%m-%d %H:%M} UTC. "
            f"Undecided items are then {_deadline_words(campaign)}."
        ),
        recipients=_reviewers(campaign),
        webhook_url=partner.webhook_url,
        partner_id=partner.pk,
    )
    return campaign


def _deadline_words(campaign: ReviewCampaign) -> str:
    return "revoked" if campaign.on_deadline == DeadlineAction.REVOKE else "kept and escalated to Porte staff"


def _reviewers(campaign: ReviewCampaign) -> list[User | str]:
    """Who answers the campaign: its partner's admins (when they review) and always the sponsor (or staff)."""
    partner = campaign.partner
    people: list[User | str] = []
    if campaign.reviewer == ReviewerMode.PARTNER_ADMINS:
        people += list(
            User.objects.filter(
                membership__partner=partner, membership__is_partner_admin=True, membership__is_active=True
            )
        )
    people += [partner.sponsor] if partner.sponsor else staff_addresses()
    return people


def review_campaigns_start_due(*, now: datetime | None = None) -> list[int]:
    """Start the scheduled review of every active partner whose interval has passed since its last review (or
    since it was created). Safe to run repeatedly and concurrently: the start re-checks under the partner lock."""
    now = now or timezone.now()
    latest = dict(
        ReviewCampaign.objects.values("partner_id")
        .annotate(last=Max("started_at"))
        .values_list("partner_id", "last")
    )
    intervals = dict(ReviewSettings.objects.values_list("partner_id", "interval"))
    default = ReviewSettings._meta.get_field("interval").get_default()
    started = []
    for partner in Partner.objects.filter(status=Partner.Status.ACTIVE):
        since = latest.get(partner.pk) or partner.created_at
        if since + intervals.get(partner.pk, default) > now:
            continue
        try:
            with transaction.atomic():
                # Re-checked under the partner's lock: another beat run may have started it meanwhile.
                Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
                last = ReviewCampaign.objects.filter(partner=partner).aggregate(last=Max("started_at"))[
                    "last"
                ]
                if (last or partner.created_at) + intervals.get(partner.pk, default) > now:
                    continue
                if ReviewCampaign.objects.filter(partner=partner, status=ReviewCampaign.Status.OPEN).exists():
                    continue
                started.append(
                    review_campaign_start(partner=partner, kind=ReviewCampaign.Kind.SCHEDULED, now=now).pk
                )
        except ValidationError as exc:
            log.warning("scheduled review of partner %s not started: %s", partner.pk, exc)
    return started


# --- decisions --------------------------------------------------------------------------------------------------


def may_decide(user: User, item: ReviewItem) -> bool:
    """Staff decide any item; a partner admin the items assigned to the partner's admins, never about themselves."""
    if item.subject_id is not None and item.subject_id == user.pk:
        return False
    actor = actor_of(user)
    if not actor.in_standing:
        return False
    return actor.is_staff or (
        actor.is_partner_admin
        and actor.partner_id == item.campaign.partner_id
        and item.assignee == ReviewItem.Assignee.PARTNER_ADMINS
    )


@transaction.atomic
def review_item_decide(*, item: ReviewItem, decision: str, comment: str, actor: User) -> ReviewItem:
    """Record a reviewer's decision. Revoke takes the access away now (same services as every revocation);
    narrow opens a follow-up for staff and changes nothing in IAM by itself."""
    item = (
        ReviewItem.objects.select_for_update(of=("self",), no_key=True)
        .select_related("campaign__partner")
        .get(pk=item.pk)
    )
    comment = comment.strip()
    errors: dict[str, str] = {}
    if not may_decide(actor, item):
        errors["decision"] = (
            "You cannot decide on your own access; the partner's sponsor will."
            if item.subject_id == actor.pk
            else "This item is not yours to decide."
        )
    elif not item.campaign.is_open:
        errors["decision"] = "This review is closed."
    elif item.decision:
        errors["decision"] = f"Already decided ({item.get_decision_display().lower()})."
    if decision not in ReviewItem.Decision.values:
        errors["decision"] = "Choose keep, revoke or narrow."
    elif decision != ReviewItem.Decision.KEEP and len(comment) < MIN_COMMENT:
        errors["comment"] = (
            "Say what to remove from this access." if decision == ReviewItem.Decision.NARROW else "Say why."
        ) + f" (at least {MIN_COMMENT} characters)"
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    item.decision, item.comment, item.decided_by, item.decided_at = decision, comment, actor, now
    item.save(update_fields=["decision", "comment", "decided_by", "decided_at"])
    audit_record(
        action="review.decided",
        obj=item,
        actor=actor,
        partner_id=item.campaign.partner_id,
        data={"decision": decision, "comment": comment, "recommended": item.recommended, "label": item.label},
    )
    if decision == ReviewItem.Decision.REVOKE:
        _enact_revoke(item, reason=f"access review #{item.campaign_id}: {comment}", actor=actor)
    elif decision == ReviewItem.Decision.NARROW:
        notify(
            event="review.narrow",
            subject=f"Narrow access for {item.campaign.partner.name}: {item.label}",
            body=(
                f"A reviewer asked to narrow this access (review #{item.campaign_id}, item #{item.pk}):\n"
                f"{item.label}\nWhat to remove: {comment}\nPorte does not change the role by itself: edit it, "
                "then mark the follow-up done on the review page."
            ),
            recipients=[item.campaign.partner.sponsor]
            if item.campaign.partner.sponsor
            else staff_addresses(),
            partner_id=item.campaign.partner_id,
        )
    return item


def _enact_revoke(item: ReviewItem, *, reason: str, actor: User | None) -> None:
    """Carry out a revoke decision through the services every revocation uses (inside the caller's transaction)."""
    if item.enacted_at is not None:
        return
    partner = item.campaign.partner
    membership = (
        Membership.objects.filter(user_id=item.subject_id, partner=partner).first()
        if item.subject_id
        else None
    )
    if item.kind in (ReviewItem.Kind.ELIGIBILITY, ReviewItem.Kind.GROUP_ELIGIBILITY):
        if item.eligibility_id is not None:
            revocation.eligibility_revoke(eligibility_id=item.eligibility_id, reason=reason, actor=actor)
    elif item.kind == ReviewItem.Kind.MEMBERSHIP and membership is not None:
        revocation.membership_revoke(membership_id=membership.pk, reason=reason, actor=actor)
    elif item.kind == ReviewItem.Kind.ADMIN and membership is not None:
        partner_services.membership_admin_revoke(membership=membership, reason=reason, actor=actor)
    item.enacted_at = timezone.now()
    item.save(update_fields=["enacted_at"])
    affected: list[User] = [item.subject] if item.subject is not None else []
    if item.kind == ReviewItem.Kind.GROUP_ELIGIBILITY:
        # Everyone in the group loses the role (unless eligible another way): tell each of them.
        affected = [
            m.user
            for m in Membership.objects.filter(partner=partner, is_active=True).select_related("user")
            if item.group in (m.groups or [])
        ]
    if affected:
        notify(
            event="review.revoked",
            subject=f"Your access was removed: {item.label}",
            body=(
                f"After the access review of {partner.name}, this access was removed: {item.label}.\n"
                f"Reason: {item.comment}\nAsk your organisation's admin if you still need it."
            ),
            recipients=affected,
            partner_id=partner.pk,
        )


@transaction.atomic
def review_follow_up_done(*, item: ReviewItem, actor: User) -> ReviewItem:
    """Staff changed the role as a narrow decision asked (by hand, through role editing)."""
    item = (
        ReviewItem.objects.select_for_update(of=("self",), no_key=True)
        .select_related("campaign")
        .get(pk=item.pk)
    )
    if item.decision != ReviewItem.Decision.NARROW:
        raise ValidationError({"item": "Only narrow decisions have a follow-up."})
    if item.follow_up_done_at is None:
        item.follow_up_done_at = timezone.now()
        item.save(update_fields=["follow_up_done_at"])
        audit_record(
            action="review.follow_up_done",
            obj=item,
            actor=actor,
            partner_id=item.campaign.partner_id,
            data={},
        )
    return item


# --- reminders and deadline ---------------------------------------------------------------------------------------


def review_reminders_send(*, now: datetime | None = None) -> int:
    """Remind reviewers 3 days and 1 day before the deadline, each reminder once per campaign."""
    now = now or timezone.now()
    sent = 0
    for campaign_id in ReviewCampaign.objects.filter(
        status=ReviewCampaign.Status.OPEN,
        deadline__gt=now,
        deadline__lte=now + timedelta(days=max(REMINDER_DAYS)),
    ).values_list("pk", flat=True):
        with transaction.atomic():
            campaign = (
                ReviewCampaign.objects.select_for_update(of=("self",), no_key=True)
                .select_related("partner")
                .get(pk=campaign_id)
            )
            due = [d for d in REMINDER_DAYS if campaign.deadline - now <= timedelta(days=d)]
            pending = [d for d in due if d not in campaign.reminders_sent]
            if not campaign.is_open or not pending:
                continue
            # Every reminder now due counts as sent: a campaign started two days before its deadline gets one.
            campaign.reminders_sent = sorted({*campaign.reminders_sent, *due}, reverse=True)
            campaign.save(update_fields=["reminders_sent"])
            undecided = campaign.items.filter(decision="").count()
            audit_record(
                action="review.reminded",
                obj=campaign,
                partner_id=campaign.partner_id,
                data={"days_before": min(pending), "undecided": undecided},
            )
            if undecided:
                notify(
                    event="review.reminder",
                    subject=(
                        f"Access review of {campaign.partner.name}: {undecided} items undecided, "
                        f"due {campaign.deadline:%Y-%m-%d %H:%M} UTC"
                    ),
                    body=(
                        f"{undecided} items of the access review of {campaign.partner.name} have no decision. "
                        f"At the deadline they are {_deadline_words(campaign)}."
                    ),
                    recipients=_reviewers(campaign),
                    webhook_url=campaign.partner.webhook_url,
                    partner_id=campaign.partner_id,
                )
                sent += 1
    return sent


def review_deadlines_enforce(*, now: datetime | None = None) -> int:
    """Settle every undecided item of campaigns past their deadline, then close them. Returns items settled."""
    now = now or timezone.now()
    settled = 0
    for campaign in ReviewCampaign.objects.filter(status=ReviewCampaign.Status.OPEN, deadline__lte=now):
        for item_id in campaign.items.filter(decision="").values_list("pk", flat=True).iterator():
            settled += _settle_at_deadline(item_id, now)
        _campaign_close(campaign.pk, now)
    return settled


@transaction.atomic
def _settle_at_deadline(item_id: int, now: datetime) -> int:
    item = (
        ReviewItem.objects.select_for_update(of=("self",), no_key=True)
        .select_related("campaign__partner")
        .get(pk=item_id)
    )
    if item.decision:
        return 0  # decided meanwhile, or settled by an earlier run
    campaign = item.campaign
    if campaign.on_deadline == DeadlineAction.REVOKE:
        item.decision = ReviewItem.Decision.REVOKE
        item.comment = f"Not reviewed by the deadline ({campaign.deadline:%Y-%m-%d %H:%M} UTC): revoked."
    else:
        item.decision, item.escalated = ReviewItem.Decision.KEEP, True
        item.comment = (
            f"Not reviewed by the deadline ({campaign.deadline:%Y-%m-%d %H:%M} UTC): kept, escalated."
        )
    item.decided_at, item.by_deadline = now, True
    item.save(update_fields=["decision", "comment", "decided_at", "by_deadline", "escalated"])
    audit_record(
        action="review.deadline_passed",
        obj=item,
        partner_id=campaign.partner_id,
        data={"decision": item.decision, "escalated": item.escalated, "label": item.label},
    )
    if item.decision == ReviewItem.Decision.REVOKE:
        _enact_revoke(item, reason=f"access review #{campaign.pk}: not reviewed by the deadline", actor=None)
    return 1


@transaction.atomic
def _campaign_close(campaign_id: int, now: datetime) -> bool:
    if not ReviewCampaign.objects.filter(pk=campaign_id, status=ReviewCampaign.Status.OPEN).update(
        status=ReviewCampaign.Status.CLOSED, closed_at=now
    ):
        return False
    campaign = ReviewCampaign.objects.select_related("partner").get(pk=campaign_id)
    counts = {d: campaign.items.filter(decision=d).count() for d in ReviewItem.Decision.values}
    by_deadline = campaign.items.filter(by_deadline=True).count()
    audit_record(
        action="review.closed",
        obj=campaign,
        partner_id=campaign.partner_id,
        data={**counts, "by_deadline": by_deadline},
    )
    recipients = _reviewers(campaign)
    escalated = campaign.items.filter(escalated=True).count()
    if escalated:
        recipients += staff_addresses()
    notify(
        event="review.closed",
        subject=f"Access review of {campaign.partner.name} closed",
        body=(
            f"The access review of {campaign.partner.name} (#{campaign.pk}) closed at its deadline: "
            f"{counts['keep']} kept, {counts['revoke']} revoked, {counts['narrow']} to narrow; "
            f"{by_deadline} were not reviewed in time and were {_deadline_words(campaign)}"
            + (f" ({escalated} escalated)." if escalated else ".")
        ),
        recipients=recipients,
        webhook_url=campaign.partner.webhook_url,
        partner_id=campaign.partner_id,
    )
    return True


def reviews_tick(*, now: datetime | None = None) -> dict[str, int]:
    """The periodic work of reviews: start those due, remind, enforce deadlines."""
    now = now or timezone.now()
    return {
        "started": len(review_campaigns_start_due(now=now)),
        "reminded": review_reminders_send(now=now),
        "settled": review_deadlines_enforce(now=now),
    }
