"""Porte's session store: Django's database sessions, without the round trips a one-row write does not need.

A sign-in writes its session three times here (allauth's state, its consumption, the signed-in session under its
new key), five with Django's store; a page at most once. Django's store wraps each one-statement write in a
transaction (BEGIN and COMMIT around it), looks a new key up before inserting it, reads a row before deleting it,
and gives a signed-in session its new key by inserting a copy and deleting the original. Here:
- a write outside a transaction is its one statement (a statement is atomic on its own); inside one (a view
  under `transaction.atomic`), under a savepoint, as Django's, so a clash cannot break the caller's transaction;
- a new key is inserted at once: the primary key refuses the practically impossible duplicate, and `create()`
  draws again (its `CreateError` loop), as it would after a lookup;
- a new key for the same session (`cycle_key`, at sign-in) re-keys the row in place when the session is saved,
  one UPDATE with what it then holds: the old key is gone the moment the new one exists, as with Django's
  insert, delete and update;
- a write that would change nothing is not sent: the same data as the row this store last read or wrote, and an
  expiry moved by less than `UNCHANGED_EXPIRY_SLACK` (allauth saves its state, then has the end of the request
  save the same session again);
- a delete is one DELETE (not a read, then a delete in a transaction);
- each statement is written here, not compiled by the ORM at every request (a third of a millisecond each on a
  small machine, for a table whose shape is Django's and fixed).
What a session holds, how it is signed and when it expires are Django's, unchanged.
"""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.dateparse import parse_datetime

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

    # --- reading -----------------------------------------------------------------------------------------------
    def load(self) -> dict[str, Any]:
        connection = connections[router.db_for_read(self.model)]
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT session_data, expire_date FROM {self._table(connection)}"  # noqa: S608  # Django's table
                " WHERE session_key = %s AND expire_date > %s",
                [self.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
            )
            row = cursor.fetchone()
        if row is None:  # unknown, ended or expired: forgotten, as Django's store does
            self._session_key = None
            self._row = None
            return {}
        self._row = (row[0], _aware(row[1]))
        return self.decode(row[0])

    def _unchanged(self, data: dict[str, Any], expire_date: datetime) -> bool:
        if self._row is None:
            return False
        session_data, stored_expiry = self._row
        return abs(expire_date - stored_expiry) < UNCHANGED_EXPIRY_SLACK and self.decode(session_data) == data

    # --- writing -----------------------------------------------------------------------------------------------
    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]  # Django's, not in the stubs
        session_data, expire_date = self.encode(data), self.get_expiry_date()
        if self._renamed_from is not None:
            return self._save_renamed(session_data, expire_date)
        if not must_create and self._unchanged(data, expire_date):
            return
        if must_create:
            try:
                self._insert(self.session_key, session_data, expire_date)
            except IntegrityError:
                raise CreateError from None  # the key is taken: create() draws another
        elif not self._write(
            "UPDATE {table} SET session_data = %s, expire_date = %s WHERE session_key = %s",
            [session_data, expire_date, self.session_key],
        ):
            raise UpdateError  # the row is gone: the session ended meanwhile
        self._row = (session_data, expire_date)

    def cycle_key(self) -> None:
        """A new key for this session (a sign-in): the row is re-keyed when the session is next saved, with what
        it then holds, in one UPDATE (Django inserts a copy now, deletes the original, and updates the copy at the
        end of the request). Until then the old key's row is as it was, and the new key names no row."""
        data = self._session  # type: ignore[attr-defined]  # Django's, not in the stubs
        old_key = self._renamed_from or self.session_key
        if old_key is None:
            return super().cycle_key()
        self._renamed_from = old_key
        self._session_key = self._get_new_session_key()
        self._session_cache = data
        self._row = None
        self.modified = True

    def _save_renamed(self, session_data: str, expire_date: datetime) -> None:
        old_key, self._renamed_from = self._renamed_from, None
        try:
            renamed = self._write(
                "UPDATE {table} SET session_key = %s, session_data = %s, expire_date = %s WHERE session_key = %s",
                [self.session_key, session_data, expire_date, old_key],
            )
            if not renamed:  # the old row had ended meanwhile: the session starts afresh, as Django's would
                self._insert(self.session_key, session_data, expire_date)
        except IntegrityError:
            # The new key is taken (practically impossible). It may already be known by that name (the IdP logout
            # index): end this session rather than carry on under another key.
            raise UpdateError from None
        self._row = (session_data, expire_date)

    def delete(self, session_key: str | None = None) -> None:
        key = session_key if session_key is not None else self.session_key
        if key is None:
            return
        if key == self.session_key:
            self._row = None
            if self._renamed_from is not None:  # not re-keyed yet: the row is under its old key
                key, self._renamed_from = self._renamed_from, None
        self._write("DELETE FROM {table} WHERE session_key = %s", [key])

    def _insert(self, key: str | None, session_data: str, expire_date: datetime) -> None:
        self._write(
            "INSERT INTO {table} (session_key, session_data, expire_date) VALUES (%s, %s, %s)",
            [key, session_data, expire_date],
        )

    def _write(self, sql: str, params: list[Any]) -> int:
        """One statement, and the rows it changed. Inside the caller's transaction (a view under
        `transaction.atomic`), under a savepoint: a clash must not break that transaction."""
        connection = connections[router.db_for_write(self.model)]
        values = [
            connection.ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v for v in params
        ]
        savepoint = (
            transaction.atomic(using=connection.alias) if connection.in_atomic_block else nullcontext()
        )
        with savepoint, connection.cursor() as cursor:
            cursor.execute(sql.format(table=self._table(connection)), values)
            return int(cursor.rowcount)

    # Django's async variants of the same operations (no Porte view is async): this store's, in a thread, so that a
    # session reads and writes one way whichever is called.
    async def aload(self) -> dict[str, Any]:
        return await sync_to_async(self.load)()

    async def asave(self, must_create: bool = False) -> None:
        await sync_to_async(self.save)(must_create)

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)

    def _table(self, connection: Any) -> str:
        return str(connection.ops.quote_name(self.model._meta.db_table))


def _aware(value: Any) -> datetime:
    """A stored expiry as an aware datetime (SQLite gives back the naive UTC text Django stored)."""
    moment: datetime = parse_datetime(value) or timezone.now() if isinstance(value, str) else value
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)
