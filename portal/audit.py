"""The audit log: one append-only hash chain for every state change in Porte."""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection, models
from django.utils import timezone

from portal.models import AuditEvent, User

GENESIS = "0" * 64
# Arbitrary constant naming the PostgreSQL advisory lock that serialises appends to the chain.
_CHAIN_LOCK = 0x504F525445


def _digest(
    *,
    prev_hash: str,
    at: str,
    actor_id: int | None,
    action: str,
    object_type: str,
    object_id: str,
    partner_id: int | None,
    data: dict[str, Any],
) -> str:
    body = json.dumps(
        [prev_hash, at, actor_id, action, object_type, object_id, partner_id, data],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One event to append (see audit_record_many)."""

    action: str
    obj: models.Model | None
    actor: User | None = None
    partner_id: int | None = None
    data: dict[str, Any] | None = None


def audit_record(
    *,
    action: str,
    obj: models.Model | None,
    actor: User | None = None,
    partner_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event. Must run inside the transaction that makes the change it records."""
    return audit_record_many([Entry(action, obj, actor, partner_id, data)])[0]


def audit_record_many(entries: list[Entry]) -> list[AuditEvent]:
    """Append events in order, with one chain lock, one read of the chain's head and one insert."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction of the change it records")
    if not entries:
        return []
    if connection.vendor == "postgresql":
        # Appends must not interleave, or two events would claim the same predecessor. SQLite needs no lock:
        # its IMMEDIATE transactions already serialise writers.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK])
    prev_hash = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS
    at = timezone.now()
    events = []
    for entry in entries:
        fields: dict[str, Any] = {
            "at": at,
            "actor_id": entry.actor.pk if entry.actor else None,
            "action": entry.action,
            "object_type": entry.obj._meta.label_lower if entry.obj is not None else "",
            "object_id": str(entry.obj.pk) if entry.obj is not None else "",
            "partner_id": entry.partner_id,
            "data": json.loads(json.dumps(entry.data or {}, default=str)),
        }
        digest = _digest(prev_hash=prev_hash, **{**fields, "at": at.isoformat()})
        events.append(AuditEvent(prev_hash=prev_hash, hash=digest, **fields))
        prev_hash = digest
    if len(events) == 1:
        events[0].save(force_insert=True)
        return events
    # Ids follow insertion order, which is the chain's order.
    return AuditEvent.objects.bulk_create(events, batch_size=1000)


def verify_chain(*, first_id: int | None = None, last_id: int | None = None) -> int | None:
    """Return the id of the first event that breaks the chain, or None when the whole chain holds.

    With `first_id`/`last_id`, only that range is checked: its first event must link to the event before it
    (or to the genesis), and each following event to its predecessor, every hash recomputed."""
    events = AuditEvent.objects.order_by("id")
    prev_hash = GENESIS
    if first_id is not None:
        events = events.filter(id__gte=first_id)
        before = (
            AuditEvent.objects.filter(id__lt=first_id).order_by("-id").values_list("hash", flat=True).first()
        )
        prev_hash = before or GENESIS
    if last_id is not None:
        events = events.filter(id__lte=last_id)
    for event in events.iterator(chunk_size=2000):
        expected = _digest(
            prev_hash=prev_hash,
            at=event.at.isoformat(),
            actor_id=event.actor_id,
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            partner_id=event.partner_id,
            data=event.data,
        )
        if event.prev_hash != prev_hash or event.hash != expected:
            return event.pk
        prev_hash = event.hash
    return None
