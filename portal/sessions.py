"""Porte's session store: Django's database sessions, without the round trips a one-row write does not need.

A sign-in writes its session four times (allauth's state, its consumption, the new key, the end of the request)
and every page once. Django's store wraps each one-statement write in a transaction (BEGIN and COMMIT around
it), looks a new key up before inserting it, and reads a row before deleting it. Here:
- a write outside a transaction is its one statement (a statement is atomic on its own); inside one (a view
  under `transaction.atomic`), Django's savepoint stays, so a clash cannot break the caller's transaction;
- a new key is inserted at once: the primary key refuses the practically impossible duplicate, and `create()`
  draws again (its `CreateError` loop), as it would after a lookup;
- a delete is one DELETE (not a read, then a delete in a transaction).
What a session holds, how it is signed and when it expires are Django's, unchanged.
"""

from __future__ import annotations

from django.contrib.sessions.backends.base import VALID_KEY_CHARS, CreateError, UpdateError
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, IntegrityError, connections, router
from django.utils.crypto import get_random_string


class SessionStore(DatabaseSessionStore):
    def _get_new_session_key(self) -> str:
        # 32 characters of [a-z0-9]: 165 random bits. The insert itself is the uniqueness check.
        return get_random_string(32, VALID_KEY_CHARS)

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        using = router.db_for_write(self.model)
        if connections[using].in_atomic_block:
            return super().save(must_create=must_create)
        data = self._get_session(no_load=must_create)  # type: ignore[attr-defined]  # Django's, not in the stubs
        obj = self.create_model_instance(data)
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

    def delete(self, session_key: str | None = None) -> None:
        key = session_key if session_key is not None else self.session_key
        if key is not None:
            # One DELETE: a session row has nothing that depends on it (QuerySet.delete() would add a transaction).
            self.model.objects.filter(session_key=key)._raw_delete(router.db_for_write(self.model))
