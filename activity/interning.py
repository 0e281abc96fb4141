"""What many events share, stored once: each distinct action (ActivityAction) and context (ActivityContext) is a
row of its own, found by a digest of its fields, and events reference it by id.

An ingestion run remembers every id it has met (`Interner`), so a known action or context costs a dictionary
lookup. New ones are written by a connection of their own, in autocommit, not in the ingestion batch's
transaction: actions are shared by every account, and two batches adding the same new ones in their own
transactions would each wait for the other's end (or deadlock). A row written for a batch that then rolls back
is harmless: it is found again next time. On SQLite (one writer at a time anyway) they are written by the
batch's own connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from activity.models import ActivityAction, ActivityContext, ActivityEvent

Key = tuple[Any, ...]

ACTION_FIELDS = ("event_source", "event_name", "read_only", "error_code", "error_message")
CONTEXT_FIELDS = (
    "account_id",
    "aws_region",
    "identity_type",
    "principal_arn",
    "access_key_id",
    "source_ip",
    "user_agent",
    "credential_id",
    "is_porte_session",
    "attribution_conflict",
)


def digest(key: Key) -> str:
    """What identifies an action or context: a digest of its fields' values, in order (128 bits, as hex)."""
    return hashlib.blake2b(orjson.dumps(key), digest_size=16).hexdigest()


class Interner:
    """The ids of one table's rows by their fields' values (a `Key`, in `fields` order), for one ingestion run."""

    def __init__(self, model: type[ActivityAction] | type[ActivityContext], fields: Sequence[str]) -> None:
        self.model, self.fields = model, tuple(fields)
        self.ids: dict[Key, int] = {}  # read directly in the ingestion loop (a method call per event costs)

    def unseen(self, keys: Iterable[Key]) -> set[Key]:
        ids = self.ids
        return {key for key in keys if key not in ids}

    def load(self, keys: Iterable[Key]) -> None:
        """Make sure each of `keys` has its row and its id is known: found, or written (see the module)."""
        missing = {digest(key): key for key in self.unseen(keys)}
        self._found(missing)
        # Written, then read back; again if retention forgot one in between (`forget_unused`, once a month).
        for _ in range(3):
            if not missing:
                return
            self._write(missing)
            self._found(missing)
        raise RuntimeError(f"{len(missing)} {self.model._meta.verbose_name} rows were not stored")

    def _found(self, missing: dict[str, Key]) -> None:
        """Record the ids of the rows already stored, taking them out of `missing`."""
        if not missing:
            return
        found = self.model.objects.filter(digest__in=list(missing)).values_list("digest", "pk")
        for value, pk in found:
            self.ids[missing.pop(value)] = int(pk)

    def _write(self, missing: dict[str, Key]) -> None:
        table = self.model._meta.db_table
        # Plain fields and references: each column is named as the field, or as the reference's id.
        columns = [*self.fields, "digest"]
        rows = [(*key, value) for value, key in sorted(missing.items())]
        if connection.vendor != "postgresql":
            _insert(connection, table, columns, rows)
            return
        # Its own connection, in autocommit (see the module): settings as the default connection's.
        own = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            _insert(own, table, columns, rows)
        finally:
            own.close()


def _insert(db: BaseDatabaseWrapper, table: str, columns: list[str], rows: list[Key]) -> None:
    """Insert rows whose digest is new; those stored meanwhile by another run are left as they are."""
    quote = db.ops.quote_name
    placeholders = ", ".join(["%s"] * len(columns))
    sql = (
        f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608
        f"VALUES ({placeholders}) ON CONFLICT ({quote('digest')}) DO NOTHING"
    )
    with db.cursor() as cursor:
        cursor.executemany(sql, rows)


def forget_unused() -> int:
    """Delete the actions and contexts no event refers to any more (after retention purged their events), so that
    what they say (principals, addresses, user agents) goes with the events; how many. One pass over the events'
    references (the retention purge calls this when it dropped some). An ingestion run meanwhile meeting one of
    them again finds it gone and writes it anew; an event stored at that very moment shows without it (see
    activity/rows.py)."""
    deleted = 0
    for model, column in ((ActivityContext, "context_id"), (ActivityAction, "action_id")):
        used = set(ActivityEvent.objects.order_by().values_list(column, flat=True).distinct())
        unused = [pk for pk in model.objects.values_list("pk", flat=True) if pk not in used]
        for start in range(0, len(unused), 5000):
            deleted += model.objects.filter(pk__in=unused[start : start + 5000]).delete()[0]
    return deleted
