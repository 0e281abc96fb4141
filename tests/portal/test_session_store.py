"""portal.sessions: Django's database sessions with one statement per write outside a transaction, and Django's
own behaviour kept where it matters: a key clash draws another key, a session ended meanwhile is not written back,
and a clash inside the caller's transaction leaves that transaction usable."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.models import Session
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from portal.sessions import SessionStore

pytestmark = pytest.mark.django_db(transaction=True)  # real autocommit: no test transaction around the writes


def _statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"].split(" ", 1)[0] for q in queries.captured_queries]


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
