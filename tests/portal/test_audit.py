"""The audit log is one append-only hash chain: each event commits to its predecessor, PostgreSQL refuses
UPDATE and DELETE on the table, and `verify_chain` names the first event a tamperer broke."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from portal.audit import GENESIS, audit_record, verify_chain
from portal.models import AuditEvent, User


@pytest.fixture(autouse=True)
def _require_postgresql() -> None:
    # The append-only trigger exists on PostgreSQL only; the suite runs these on PostgreSQL (tests/run.py picks
    # it whenever it answers). Fail loudly rather than pass vacuously elsewhere.
    if connection.vendor != "postgresql":
        pytest.fail(
            "tests/portal/test_audit.py needs PostgreSQL (the append-only trigger is PostgreSQL-only)"
        )


def _record_three(actor: User | None = None) -> list[AuditEvent]:
    with transaction.atomic():
        return [
            audit_record(action="test.first", obj=actor, actor=actor, partner_id=7, data={"n": 1}),
            audit_record(action="test.second", obj=None, data={"nested": {"b": [1, 2]}, "a": "x"}),
            audit_record(action="test.third", obj=actor, actor=actor, data={}),
        ]


@pytest.mark.django_db
def test_events_form_a_chain_from_genesis():
    """Each event's prev_hash is its predecessor's hash (the first one's is the genesis), hashes are distinct,
    and the untouched chain verifies."""
    user = User.objects.create_user(username="auditor")
    events = _record_three(user)

    assert events[0].prev_hash == GENESIS
    assert events[1].prev_hash == events[0].hash
    assert events[2].prev_hash == events[1].hash
    assert len({e.hash for e in events}) == 3
    assert events[0].object_type == "portal.user" and events[0].object_id == str(user.pk)
    assert events[1].object_type == "" and events[1].object_id == ""
    assert verify_chain() is None


@pytest.mark.django_db
def test_update_and_delete_are_refused_by_the_database():
    """Raw SQL bypassing the ORM cannot rewrite or remove history: the trigger raises, the row is unchanged."""
    events = _record_three()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE portal_auditevent SET action = 'test.forged' WHERE id = %s", [events[1].pk])
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM portal_auditevent WHERE id = %s", [events[1].pk])

    assert AuditEvent.objects.get(pk=events[1].pk).action == "test.second"
    assert AuditEvent.objects.count() == 3
    assert verify_chain() is None


def _without_trigger() -> None:
    # Simulates someone with owner rights who disables the guard; rolled back with the test's transaction.
    with connection.cursor() as cursor:
        # Django's foreign keys are deferred: run their pending checks now, or ALTER TABLE refuses.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE portal_auditevent DISABLE TRIGGER porte_audit_append_only")


@pytest.mark.django_db
def test_verify_chain_names_an_event_whose_content_was_altered():
    events = _record_three()
    _without_trigger()
    with connection.cursor() as cursor:
        cursor.execute(
            """UPDATE portal_auditevent SET data = '{"nested": {"b": [1, 3]}, "a": "x"}'::jsonb
                          WHERE id = %s""",
            [events[1].pk],
        )
    assert verify_chain() == events[1].pk


@pytest.mark.django_db
def test_verify_chain_catches_a_rehashed_row_at_its_successor():
    """A forger who also recomputes the altered row's own hash still breaks the link to the next event."""
    events = _record_three()
    _without_trigger()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE portal_auditevent SET hash = %s WHERE id = %s", ["f" * 64, events[1].pk])
    # The altered row's hash no longer matches its content, so it is the first break.
    assert verify_chain() == events[1].pk


@pytest.mark.django_db
def test_verify_chain_names_the_event_after_a_deleted_one():
    events = _record_three()
    _without_trigger()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM portal_auditevent WHERE id = %s", [events[1].pk])
    assert verify_chain() == events[2].pk


@pytest.mark.django_db
def test_verify_chain_names_a_backdated_event():
    events = _record_three()
    _without_trigger()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE portal_auditevent SET at = at - interval '1 day' WHERE id = %s", [events[0].pk]
        )
    assert verify_chain() == events[0].pk


@pytest.mark.django_db(transaction=True)
def test_audit_record_refuses_to_run_outside_a_transaction():
    """An audit event written outside the changing transaction could survive a rolled-back change (or be lost
    after a committed one), so audit_record refuses; nothing is written."""
    assert not connection.in_atomic_block
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(action="test.orphan", obj=None)
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_event_rolls_back_with_its_change():
    """Written in the changing transaction, an event disappears with a rolled-back change and the chain holds."""
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        User.objects.create_user(username="ghost")
        audit_record(action="test.rolled_back", obj=None)
        1 / 0  # noqa: B018
    assert not AuditEvent.objects.exists() and not User.objects.filter(username="ghost").exists()
    with transaction.atomic():
        kept = audit_record(action="test.kept", obj=None)
    assert kept.prev_hash == GENESIS
    assert verify_chain() is None


@pytest.mark.django_db(transaction=True)
def test_the_append_only_trigger_is_enabled():
    """The migration installs the guard, and the tests above that disable it only do so inside their own
    rolled-back transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'porte_audit_append_only'")
        assert cursor.fetchall() == [("O",)]
