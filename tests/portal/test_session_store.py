"""portal.sessions: Django's database sessions with one statement per write outside a transaction, and Django's
own behaviour kept where it matters: a key clash draws another key, a session ended meanwhile is not written back,
and a clash inside the caller's transaction leaves that transaction usable."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal import sessions
from portal.sessions import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)  # real autocommit: no test transaction around the writes


def _statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]


def _alices_session() -> SessionStore:
    store = SessionStore()
    store["who"] = "alice"
    store.save()
    return store


def test_each_write_is_one_statement():
    store = SessionStore()
    store["a"] = 1
    with CaptureQueriesContext(connection) as created:
        store.save()
    store["a"] = 2
    with CaptureQueriesContext(connection) as updated:
        store.save()
    with CaptureQueriesContext(connection) as deleted:
        store.delete()
    assert (_statements(created), _statements(updated), _statements(deleted)) == (
        ["INSERT"],
        ["UPDATE"],
        ["DELETE"],
    )
    assert not Session.objects.exists()


def test_a_key_clash_draws_another_key(monkeypatch):
    taken = SessionStore()
    taken["owner"] = "first"
    taken.save()
    keys = iter([taken.session_key, "k" * 32])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(keys))
    second = SessionStore()
    second["owner"] = "second"
    second.save()
    assert second.session_key == "k" * 32
    assert SessionStore(taken.session_key)["owner"] == "first"  # the existing session is untouched
    assert SessionStore("k" * 32)["owner"] == "second"


def test_a_session_ended_meanwhile_is_not_written_back():
    store = SessionStore()
    store["a"] = 1
    store.save()
    SessionStore().delete(store.session_key)  # another request ends it (sign-out, IdP logout)
    store["a"] = 2
    with pytest.raises(UpdateError):
        store.save()
    assert not Session.objects.exists()


def test_a_clash_inside_a_transaction_leaves_it_usable(monkeypatch):
    taken = SessionStore()
    taken.save()
    keys = iter([taken.session_key, "t" * 32])
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: next(keys))
    with transaction.atomic():
        store = SessionStore()
        store.save()
        assert Session.objects.filter(session_key="t" * 32).exists()  # the transaction still answers
    assert store.session_key == "t" * 32
    assert Session.objects.count() == 2


def test_a_new_key_renames_the_row_with_what_it_holds_in_one_statement():
    store = _alices_session()
    old_key = store.session_key
    with CaptureQueriesContext(connection) as cycled:
        store.cycle_key()
        store["signed_in"] = True
        store.save()
    assert _statements(cycled) == ["UPDATE"]
    assert store.session_key != old_key
    assert not Session.objects.filter(session_key=old_key).exists()  # no fixation: the old key is gone
    assert SessionStore(store.session_key).load() == {"who": "alice", "signed_in": True}
    assert Session.objects.count() == 1


def test_a_session_ended_before_its_new_key_is_saved_starts_afresh():
    store = _alices_session()
    old_key = store.session_key
    store.cycle_key()
    SessionStore().delete(old_key)  # another request ended it meanwhile
    store.save()
    assert store.session_key not in (None, old_key)
    assert (
        SessionStore(store.session_key)["who"] == "alice"
    )  # what this request holds is kept, as Django does
    assert Session.objects.count() == 1


def test_a_session_ended_with_a_new_key_not_yet_saved_leaves_nothing():
    store = _alices_session()
    store.cycle_key()
    store.flush()  # sign-out in the same request
    assert not Session.objects.exists()


def test_a_new_key_that_is_taken_ends_the_session_instead_of_renaming_it(monkeypatch):
    taken = SessionStore()
    taken["owner"] = "first"
    taken.save()
    store = SessionStore()
    store["owner"] = "second"
    store.save()
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: taken.session_key)
    store.cycle_key()
    with pytest.raises(UpdateError):  # Django's middleware answers 400: sign in again
        store.save()
    assert SessionStore(taken.session_key)["owner"] == "first"  # the other session is untouched


def test_a_taken_new_key_inside_a_transaction_leaves_it_usable(monkeypatch):
    taken = _alices_session()
    store = SessionStore()
    store["owner"] = "second"
    store.save()
    monkeypatch.setattr(SessionStore, "_get_new_session_key", lambda self: taken.session_key)
    with transaction.atomic():
        store.cycle_key()
        with pytest.raises(UpdateError):
            store.save()
        assert Session.objects.count() == 2  # the transaction still answers
    assert SessionStore(taken.session_key)["who"] == "alice"


def test_a_write_that_changes_nothing_is_not_sent():
    store = SessionStore()
    store["state"] = {"a": [1, 2]}
    store.save()
    again = SessionStore(store.session_key)  # allauth's reload after saving its state
    again.modified = True
    with CaptureQueriesContext(connection) as unchanged:
        again.save()
    assert _statements(unchanged) == ["SELECT"]  # the read, not a write back of the same row
    again["state"] = {"a": [1, 3]}
    with CaptureQueriesContext(connection) as changed:
        again.save()
    assert _statements(changed) == ["UPDATE"]
    assert SessionStore(store.session_key)["state"] == {"a": [1, 3]}


def test_an_unchanged_session_is_still_written_when_its_expiry_moves(monkeypatch):
    store = SessionStore()
    store["a"] = 1
    store.save()
    before = Session.objects.get().expire_date
    later = store.get_expiry_date() + 2 * sessions.UNCHANGED_EXPIRY_SLACK
    monkeypatch.setattr(SessionStore, "get_expiry_date", lambda self, **kwargs: later)
    with CaptureQueriesContext(connection) as refreshed:
        store.save()
    assert _statements(refreshed) == ["UPDATE"]
    assert Session.objects.get().expire_date == later > before


def test_the_async_variants_read_and_write_the_same_way():
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    store = _alices_session()
    old_key = store.session_key

    async def sign_in() -> None:
        await store.acycle_key()
        await store.aset("signed_in", True)
        await store.asave()

    asyncio.run(sign_in())
    assert store.session_key != old_key
    assert Session.objects.count() == 1  # re-keyed in place, not copied
    assert asyncio.run(SessionStore(store.session_key).aload()) == {"who": "alice", "signed_in": True}
    asyncio.run(store.adelete())
    assert not Session.objects.exists()
    # The async variants ran in asgiref's thread: its database connection closes there, as a request's would.
    asyncio.run(sync_to_async(connections.close_all)())
