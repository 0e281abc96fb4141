"""Porte's session store: Django's database sessions, without the round trips a one-row write does not need.

A sign-in writes its session four times (allauth's state, its consumption, the new key, the end of the request)
and every page once. Django's store wraps each one-statement write in a transaction (BEGIN and COMMIT around
it), looks a new key up before inserting it, reads a row before deleting it, and gives a signed-in session its
new key by inserting a copy and deleting the original. Here:
- a write outside a transaction is its one statement (a statement is atomic on its own); inside one (a view
  under `transaction.atomic`), Django's savepoint stays, so a clash cannot break the caller's transaction;
- a new key is inserted at once: the primary key refuses the practically impossible duplicate, and `create()`
  draws again (its `CreateError` loop), as it would after a lookup;
- a new key for the same session (`cycle_key`, at sign-in) re-keys the row in place when the session is saved,
  one UPDATE with what it then holds: the old key is gone the moment the new one exists, as with Django's
  insert, delete and update;
- a write that would change nothing is not sent: the same data as the row this store last read or wrote, and an
  expiry moved by less than `UNCHANGED_EXPIRY_SLACK` (allauth saves its state, then has the end of the request
  save the same session again);
- a delete is one DELETE (not a read, then a delete in a transaction).
What a session holds, how it is signed and when it expires are Django's, unchanged.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils.crypto import get_random_string

# A rewrite of unchanged data that would move the expiry by less than this is not sent (the expiry is the
# cookie's age; the idle and absolute limits are kept in the session's own clocks, portal.middleware).
UNCHANGED_EXPIRY_SLACK = timedelta(minutes=1)


class SessionStore(DatabaseSessionStore):
    # What the row holds, as this store last read or wrote it: (session_data, expire_date).
    _row: tuple[str, datetime] | None = None
    # The key this session had before `cycle_key`, until the row is re-keyed at the next save.
    _renamed_from: str | None = None

    def _get_new_session_key(self) -> str:
        # 32 characters of [a-z0-9]: 165 random bits. The insert itself is the uniqueness check.
        return get_random_string(32, VALID_KEY_CHARS)

    def _get_session_from_db(self) -> Any:
        row = super()._get_session_from_db()  # type: ignore[misc]  # Django's, not in the stubs
        self._row = (row.session_data, row.expire_date) if row is not None else None
        return row

    def _unchanged(self, data: dict[str, Any], expire_date: datetime) -> bool:
        if self._row is None:
            return False
        session_data, stored_expiry = self._row
        return abs(expire_date - stored_expiry) < UNCHANGED_EXPIRY_SLACK and self.decode(session_data) == data

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]  # Django's, not in the stubs
        obj = self.create_model_instance(data)
        if self._renamed_from is not None:
            return self._save_renamed(obj)
        if not must_create and self._unchanged(data, obj.expire_date):
            return
        using = router.db_for_write(self.model)
        if connections[using].in_atomic_block:
            super().save(must_create=must_create)
        else:
            try:
                obj.save(force_insert=must_create, force_update=not must_create, using=using)
            except IntegrityError:
                if must_create:
                    raise CreateError from None
                raise
            except DatabaseError:
                if not must_create:
                    raise UpdateError from None  # the row is gone: the session ended meanwhile
                raise
        self._row = (obj.session_data, obj.expire_date)

    def cycle_key(self) -> None:
        """A new key for this session (a sign-in): the row is re-keyed when the session is next saved, with what
        it then holds, in one UPDATE (Django inserts a copy now, deletes the original, and updates the copy at the
        end of the request). Until then the old key's row is as it was, and the new key names no row."""
        old_key = self._renamed_from or self.session_key
        data = self._session  # type: ignore[attr-defined]  # Django's, not in the stubs
        if old_key is None or connections[router.db_for_write(self.model)].in_atomic_block:
            self._renamed_from = None
            self._row = None
            return super().cycle_key()
        self._renamed_from = old_key
        self._session_key = self._get_new_session_key()
        self._session_cache = data
        self._row = None
        self.modified = True

    def _save_renamed(self, obj: Any) -> None:
        using = router.db_for_write(self.model)
        old_key, self._renamed_from = self._renamed_from, None
        # Inside the caller's transaction, a savepoint: a clash must not break that transaction.
        within = transaction.atomic(using=using) if connections[using].in_atomic_block else nullcontext()
        try:
            with within:
                renamed = (
                    self.model.objects.using(using)
                    .filter(session_key=old_key)
                    .update(
                        session_key=obj.session_key,
                        session_data=obj.session_data,
                        expire_date=obj.expire_date,
                    )
                )
                if (
                    not renamed
                ):  # the old row had ended meanwhile: the session starts afresh, as Django's would
                    obj.save(force_insert=True, using=using)
        except IntegrityError:
            # The new key is taken (practically impossible). It may already be known by that name (the IdP logout
            # index): end this session rather than carry on under another key.
            raise UpdateError from None
        self._row = (obj.session_data, obj.expire_date)

    def delete(self, session_key: str | None = None) -> None:
        key = session_key if session_key is not None else self.session_key
        if key is not None:
            if key == self.session_key:
                self._row = None
                if self._renamed_from is not None:  # not re-keyed yet: the row is under its old key
                    key, self._renamed_from = self._renamed_from, None
            # One DELETE: a session row has nothing that depends on it (QuerySet.delete() would add a transaction).
            self.model.objects.filter(session_key=key)._raw_delete(router.db_for_write(self.model))
