"""The audit log is one append-only hash chain, sealed in commit order: writers only insert (no lock), the sealer
gives each committed event its place and hash, PostgreSQL refuses UPDATE and DELETE on the table (but the
sealer's one update of an unsealed event), and `verify_chain` names the first event a tamperer broke."""

from __future__ import annotations

import json

import pytest
from django.db import DatabaseError, connection, transaction

from portal.audit import GENESIS, audit_record, seal, unsealed, verify_chain
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
        events = [
            audit_record(action="test.first", obj=actor, actor=actor, partner_id=7, data={"n": 1}),
            audit_record(action="test.second", obj=None, data={"nested": {"b": [1, 2]}, "a": "x"}),
            audit_record(action="test.third", obj=actor, actor=actor, data={}),
        ]
    assert all(e.seq is None and e.hash is None for e in events)  # written without touching the chain
    assert seal() == 3
    return list(AuditEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("seq"))


@pytest.mark.django_db
def test_events_form_a_chain_from_genesis():
    """Each event's prev_hash is its predecessor's hash (the first one's is the genesis), hashes are distinct,
    and the untouched chain verifies."""
    user = User.objects.create_user(username="auditor")
    events = _record_three(user)

    assert [e.seq for e in events] == [1, 2, 3]
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
    assert seal() == 1
    kept.refresh_from_db()
    assert (kept.seq, kept.prev_hash) == (1, GENESIS)
    assert verify_chain() is None


@pytest.mark.django_db(transaction=True)
def test_the_append_only_trigger_is_enabled():
    """The migration installs the guard, and the tests above that disable it only do so inside their own
    rolled-back transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = 'porte_audit_append_only'")
        assert cursor.fetchall() == [("O",)]


# --- sealing --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_sealed_event_is_immutable_and_an_unsealed_one_can_only_be_sealed():
    """The trigger lets exactly one update through: giving an unsealed event its place and hash."""
    sealed = _record_three()[0]
    with transaction.atomic():
        pending = audit_record(action="test.pending", obj=None, data={"n": 1})
    for statement, args in (
        (
            "UPDATE portal_auditevent SET seq = 99, prev_hash = %s, hash = %s WHERE id = %s",
            ["a" * 64, "b" * 64],
        ),
        ("UPDATE portal_auditevent SET action = 'test.forged' WHERE id = %s", []),
    ):
        for event in (sealed, pending):
            with (
                pytest.raises(DatabaseError, match="append-only"),
                transaction.atomic(),
                connection.cursor() as cursor,
            ):
                if event is pending and "seq = 99" in statement:
                    # sealing while changing the content is refused too
                    cursor.execute(
                        "UPDATE portal_auditevent SET seq = 99, prev_hash = %s, hash = %s, action = 'x' "
                        "WHERE id = %s",
                        ["a" * 64, "b" * 64, event.pk],
                    )
                else:
                    cursor.execute(statement, [*args, event.pk])
    assert seal() == 1
    pending.refresh_from_db()
    assert (pending.seq, pending.action) == (4, "test.pending")
    assert verify_chain() is None


@pytest.mark.django_db
def test_a_gap_in_the_places_is_named():
    events = _record_three()
    _without_trigger()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE portal_auditevent SET seq = seq + 1 WHERE id = %s", [events[2].pk])
    assert verify_chain() == events[2].pk


@pytest.mark.django_db(transaction=True)
def test_writers_do_not_wait_for_each_other_and_a_late_commit_is_sealed_after_what_committed_first():
    """Two transactions append at once: the second commits while the first is still open (no lock between
    them), the sealer chains what is committed, and the first one's event, with the lower id, takes the next
    place when it commits: no gap, no reordering of what was sealed, nothing left unsealed."""
    import threading

    opened, second_done = threading.Event(), threading.Event()
    result: dict[str, int] = {}

    def second_writer() -> None:
        opened.wait(10)
        with transaction.atomic():
            result["second"] = audit_record(action="test.second_writer", obj=None).pk
        second_done.set()
        connection.close()

    writer = threading.Thread(target=second_writer)
    writer.start()
    with transaction.atomic():
        first = audit_record(action="test.first_writer", obj=None)
        opened.set()
        # The other writer commits while this transaction (holding an appended event) is still open.
        assert second_done.wait(30), "the second writer waited for the first: appends are serialised"
    writer.join()
    assert first.pk < result["second"]
    assert seal() == 2
    order = list(AuditEvent.objects.order_by("seq").values_list("id", flat=True))
    assert order == [first.pk, result["second"]] or order == [result["second"], first.pk]
    assert verify_chain() is None and unsealed().events == 0


@pytest.mark.django_db(transaction=True)
def test_an_event_committed_after_later_ids_were_sealed_gets_the_next_place():
    import threading

    opened, sealed = threading.Event(), threading.Event()
    result: dict[str, object] = {}

    def late_writer() -> None:
        with transaction.atomic():
            result["late"] = audit_record(action="test.late", obj=None).pk
            opened.set()
            sealed.wait(30)
        connection.close()

    writer = threading.Thread(target=late_writer)
    writer.start()
    assert opened.wait(30)
    with transaction.atomic():
        early = audit_record(action="test.committed_first", obj=None)
    assert seal() == 1  # the late writer's event is not committed yet
    assert unsealed().events == 0  # and is not visible as unsealed either: it does not exist for anyone else
    sealed.set()
    writer.join()
    assert unsealed().events == 1
    assert seal() == 1
    late = AuditEvent.objects.get(pk=result["late"])
    assert late.pk < early.pk and late.seq == 2  # lower id, later place: the order it became visible in
    assert verify_chain() is None


@pytest.mark.django_db(transaction=True)
def test_a_chain_written_before_sealing_existed_keeps_verifying_after_the_upgrade():
    """Events chained in id order under the old global lock get their place (their rank in id order: a
    rolled-back transaction left a gap in the ids) from the migration, and the chain verifies; new events are
    sealed after them."""
    from django.db.migrations.executor import MigrationExecutor

    from portal.audit import _digest

    executor = MigrationExecutor(connection)
    executor.migrate([("portal", "0006_partner_people_without_passwords")])
    try:
        prev = GENESIS
        with connection.cursor() as cursor:
            for n in range(3):
                if n == 2:  # an id taken by a transaction that rolled back
                    cursor.execute("SELECT nextval(pg_get_serial_sequence('portal_auditevent', 'id'))")
                at = f"2026-01-0{n + 1}T10:00:00+00:00"
                digest = _digest(
                    prev_hash=prev,
                    at=at,
                    actor_id=None,
                    action=f"old.{n}",
                    object_type="",
                    object_id="",
                    partner_id=None,
                    data={"n": n},
                )
                cursor.execute(
                    "INSERT INTO portal_auditevent (at, actor_id, action, object_type, object_id, partner_id, data,"
                    " prev_hash, hash) VALUES (%s, NULL, %s, '', '', NULL, %s, %s, %s)",
                    [at, f"old.{n}", json.dumps({"n": n}), prev, digest],
                )
                prev = digest
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    old = list(AuditEvent.objects.order_by("id"))
    assert [e.seq for e in old] == [1, 2, 3] and old[2].pk - old[1].pk == 2
    assert verify_chain() is None
    with transaction.atomic():
        new = audit_record(action="test.after_upgrade", obj=None)
    assert seal() == 1
    new.refresh_from_db()
    assert new.seq == old[-1].seq + 1 and new.prev_hash == old[-1].hash
    assert verify_chain() is None
