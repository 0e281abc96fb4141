"""Alerts: recorded from the rules' drafts (inside ingestion's transaction), acknowledged by staff."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from activity.alerts.rules import RULES, SAMPLE_EVENTS, Batch, Draft, rules_failed
from activity.models import Alert
from portal.audit import audit_record
from portal.models import User
from portal.notifications import notify, staff_addresses

log = logging.getLogger(__name__)


def alerts_for_batch(batch: Batch) -> list[Alert]:
    """Ingestion's hook, once a batch of log files is stored (same transaction): the rules judge only the events
    new to the database (the batch is selected from them, see `Batch.only`), so a file read again, or
    overlapping one read before, raises nothing again. Returns the alerts created.

    A rule that fails (a bug, which a crafted record could trigger) must neither stop ingestion — every run would
    stop at the same batch — nor go unseen: what the rules did is undone, the events stay stored, and staff get an
    alert saying which events were not judged."""
    if not batch:
        return []
    try:
        with transaction.atomic():
            drafts = [draft for rule in RULES for draft in rule(batch)]
            return alerts_record(drafts=drafts) if drafts else []
    except Exception as exc:  # whatever the rule's bug: it becomes an alert (and the traceback is logged)
        log.exception("the alert rules failed on a batch of new events; they are stored but not judged")
        return alerts_record(drafts=[rules_failed(batch, exc)])


@transaction.atomic
def alerts_record(*, drafts: Sequence[Draft]) -> list[Alert]:
    """Create the alerts the drafts describe, or grow the one each continues (same dedupe key, or for a burst the
    burst of the same principal it overlaps). Each new alert is audited and emailed to staff, once."""
    existing = {
        alert.dedupe_key: alert
        for alert in Alert.objects.select_for_update(of=("self",), no_key=True).filter(
            dedupe_key__in=[d.dedupe_key for d in drafts]
        )
    }
    created: list[Alert] = []
    grown: dict[int, Alert] = {}  # by id: one instance per row, however many drafts grow it
    recipients: list[str] | None = None
    for draft in drafts:
        alert = existing.get(draft.dedupe_key) or _continued_burst(draft)
        if alert is None:
            try:
                with transaction.atomic():
                    alert = _create(draft)
            except IntegrityError:
                # Another ingestion run (another prefix of the trail) recorded the same incident just now.
                alert = Alert.objects.select_for_update(of=("self",), no_key=True).get(
                    dedupe_key=draft.dedupe_key
                )
            else:
                existing[draft.dedupe_key] = alert
                if recipients is None:
                    recipients = staff_addresses()
                _announce(alert, recipients)
                created.append(alert)
                continue
        alert = grown.setdefault(alert.pk, alert)
        existing[alert.dedupe_key] = alert
        _grow(alert, draft)
    if grown:
        _save_grown(list(grown.values()))
    return created


def _save_grown(alerts: list[Alert]) -> None:
    """Save the alerts that grew (a flood of refusals grows a few alerts per batch): one UPDATE per alert, sent
    together (psycopg pipelines `executemany`). Django's bulk_update builds a CASE expression per field and alert
    in Python, which cost more than the rules themselves."""
    names = {"event_count", "event_ids", "first_event_at", "last_event_at", "updated_at"}
    fields = [field for field in Alert._meta.concrete_fields if field.name in names]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(str(field.column))} = %s" for field in fields)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {quote(Alert._meta.db_table)} SET {assignments} WHERE id = %s",  # noqa: S608
            [
                [field.get_db_prep_save(getattr(alert, field.attname), connection) for field in fields]
                + [alert.pk]
                for alert in alerts
            ],
        )


def _continued_burst(draft: Draft) -> Alert | None:
    if draft.rule != Alert.Rule.DENIED_BURST:
        return None
    window = timedelta(minutes=settings.ALERT_DENIED_BURST_MINUTES)
    return (
        Alert.objects.select_for_update(of=("self",), no_key=True)
        .filter(
            rule=Alert.Rule.DENIED_BURST,
            principal=draft.principal,
            last_event_at__gte=draft.first_event_at - window,
            first_event_at__lte=draft.last_event_at + window,
        )
        .order_by("-last_event_at")
        .first()
    )


def _create(draft: Draft) -> Alert:
    now = timezone.now()
    return Alert.objects.create(
        rule=draft.rule,
        severity=draft.severity,
        dedupe_key=draft.dedupe_key,
        principal=draft.principal[:1024],
        partner_id=draft.partner_id,
        user_id=draft.user_id,
        grant_id=draft.grant_id,
        summary=draft.summary,
        event_count=draft.event_count,
        event_ids=draft.event_ids[:SAMPLE_EVENTS],
        first_event_at=draft.first_event_at,
        last_event_at=draft.last_event_at,
        detail=draft.detail,
        created_at=now,
        updated_at=now,
    )


def _grow(alert: Alert, draft: Draft) -> None:
    """More events of an incident already alerted on: counted, sampled, no second notice (saved by the caller)."""
    alert.event_count += draft.new_events
    alert.event_ids = (alert.event_ids + [e for e in draft.event_ids if e not in alert.event_ids])[
        :SAMPLE_EVENTS
    ]
    alert.first_event_at = min(alert.first_event_at, draft.first_event_at)
    alert.last_event_at = max(alert.last_event_at, draft.last_event_at)
    alert.updated_at = timezone.now()


def _announce(alert: Alert, recipients: list[str]) -> None:
    audit_record(
        action="alert.created",
        obj=alert,
        partner_id=alert.partner_id,
        data={"rule": alert.rule, "severity": alert.severity, "events": alert.event_count},
    )
    notify(
        event="alert.created",
        subject=f"{alert.get_severity_display()} alert: {alert.get_rule_display()}",
        body=(
            f"{alert.summary}\n\n"
            f"Rule: {alert.get_rule_display()}\nSeverity: {alert.get_severity_display()}\n"
            f"Events: {alert.event_count}, {alert.first_event_at:%Y-%m-%d %H:%M:%S} to "
            f"{alert.last_event_at:%Y-%m-%d %H:%M:%S} UTC\n\n"
            f"Review and acknowledge it: {settings.PUBLIC_URL}/staff/alerts/?alert={alert.pk}\n"
        ),
        recipients=recipients,
    )


@transaction.atomic
def alert_acknowledge(*, alert: Alert, actor: User, note: str) -> Alert:
    """Staff saw it and say what they did. Acknowledging twice keeps the first acknowledgement."""
    alert = Alert.objects.select_for_update(of=("self",), no_key=True).get(pk=alert.pk)
    note = note.strip()
    if not note:
        raise ValidationError({"note": "Say what you found or did (a few words)."})
    if alert.acknowledged_at is not None:
        raise ValidationError(
            {
                "note": f"Already acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at:%Y-%m-%d %H:%M}."
            }
        )
    alert.acknowledged_at, alert.acknowledged_by, alert.acknowledgement_note = (
        timezone.now(),
        actor,
        note[:2000],
    )
    alert.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledgement_note"])
    audit_record(
        action="alert.acknowledged",
        obj=alert,
        actor=actor,
        partner_id=alert.partner_id,
        data={"rule": alert.rule, "note": alert.acknowledgement_note},
    )
    return alert
