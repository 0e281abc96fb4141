"""The audit log: one append-only hash chain for every state change in Porte, sealed in commit order.

Writers append an event inside the transaction of the change it records: one INSERT, no lock and no read of the
chain's head, so audited writes never queue behind each other (one partner's slow AWS call cannot stall another
partner's sign-in) and never deadlock on the log. The sealer (`seal`, run by beat every AUDIT_SEAL_SECONDS and
after commits that appended) then takes the committed unsealed events in id order and gives each the next
place in the chain (`seq`, contiguous from 1), `prev_hash` and `hash`. An event whose transaction commits late
(after events with higher ids were sealed) simply gets a later place: the chain is the order in which events
became visible, never reordered afterwards, and has no gaps (`verify_chain` checks seq too). What is not sealed
yet is the unsealed tail (`unsealed`), a few seconds long, shown with its age on the metrics.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from portal import queue
from portal.models import AuditEvent, User

GENESIS = "0" * 64
# Arbitrary constant naming the PostgreSQL advisory lock that lets one sealer run at a time (never taken by
# writers; a second sealer simply finds the lock taken and leaves).
_SEAL_LOCK = 0x504F525445
SEAL_BATCH = 5000


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
    """Append events in order, in one insert; they are chained by the sealer once committed."""
    if not connection.in_atomic_block:
        raise RuntimeError("audit_record must be called inside the transaction of the change it records")
    if not entries:
        return []
    at = timezone.now()
    events = [
        AuditEvent(
            at=at,
            actor_id=entry.actor.pk if entry.actor else None,
            action=entry.action,
            object_type=entry.obj._meta.label_lower if entry.obj is not None else "",
            object_id=str(entry.obj.pk) if entry.obj is not None else "",
            partner_id=entry.partner_id,
            data=json.loads(json.dumps(entry.data or {}, default=str)),
        )
        for entry in entries
    ]
    if len(events) == 1:
        events[0].save(force_insert=True)
    else:
        events = AuditEvent.objects.bulk_create(events, batch_size=1000)  # ids follow the list's order
    _seal_soon()
    return events


def ask_for_seal() -> None:
    """Ask a worker to seal now (at most once a second across processes; beat is the safety net)."""
    from django.core.cache import cache

    if cache.add("porte:audit-seal-asked", 1, timeout=1):
        try:
            queue.send("portal.tasks.audit_seal")
        except Exception:  # the broker is down: beat seals within AUDIT_SEAL_SECONDS anyway
            cache.delete("porte:audit-seal-asked")


def _seal_soon() -> None:
    """Once per transaction: after it commits, ask for a seal."""
    if not any(callback is ask_for_seal for _, callback, *_ in connection.run_on_commit):
        transaction.on_commit(ask_for_seal)


def _content(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at.isoformat(),
        "actor_id": event.actor_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "partner_id": event.partner_id,
        "data": event.data,
    }


def seal(*, batch: int = SEAL_BATCH) -> int:
    """Chain the committed unsealed events, oldest id first; return how many were sealed. Safe to run anywhere,
    any number of times: one sealer works at a time, the others return 0."""
    sealed = 0
    while True:
        with transaction.atomic():
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_SEAL_LOCK])
                    if not cursor.fetchone()[0]:
                        return sealed
            head = (
                AuditEvent.objects.filter(seq__isnull=False)
                .order_by("-seq")
                .values_list("seq", "hash")
                .first()
            )
            seq, prev_hash = (head[0] or 0, head[1] or GENESIS) if head is not None else (0, GENESIS)
            events = list(AuditEvent.objects.filter(seq__isnull=True).order_by("id")[:batch])
            for event in events:
                seq += 1
                event.seq, event.prev_hash = seq, prev_hash
                event.hash = prev_hash = _digest(prev_hash=prev_hash, **_content(event))
            AuditEvent.objects.bulk_update(events, ["seq", "prev_hash", "hash"], batch_size=1000)
        sealed += len(events)
        if len(events) < batch:
            return sealed


@dataclass(frozen=True)
class Tail:
    """The events not sealed yet: how many, and how long the oldest has waited."""

    events: int
    oldest_age: timedelta | None


def unsealed() -> Tail:
    row = AuditEvent.objects.filter(seq__isnull=True).aggregate(n=models.Count("id"), oldest=models.Min("at"))
    oldest = row["oldest"]
    return Tail(row["n"], timezone.now() - oldest if oldest is not None else None)


def verify_chain(*, first_seq: int | None = None, last_seq: int | None = None) -> int | None:
    """Return the id of the first sealed event that breaks the chain, or None when the whole chain holds.

    Places run 1, 2, 3... with no gap; each event links to its predecessor and its hash is recomputed. With
    `first_seq`/`last_seq` only that stretch is checked, its first event linking to the one before it (or to the
    genesis). Unsealed events are not part of the chain yet (see `unsealed`)."""
    events = AuditEvent.objects.filter(seq__isnull=False).order_by("seq")
    expected_seq, prev_hash = 1, GENESIS
    if first_seq is not None:
        events = events.filter(seq__gte=first_seq)
        before = AuditEvent.objects.filter(seq=first_seq - 1).values_list("hash", flat=True).first()
        expected_seq, prev_hash = first_seq, before or GENESIS
    if last_seq is not None:
        events = events.filter(seq__lte=last_seq)
    for event in events.iterator(chunk_size=2000):
        expected = _digest(prev_hash=prev_hash, **_content(event))
        if event.seq != expected_seq or event.prev_hash != prev_hash or event.hash != expected:
            return event.pk
        expected_seq, prev_hash = expected_seq + 1, expected
    return None
