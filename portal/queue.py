"""How services queue Celery tasks: by the task's dotted name, once the current transaction has committed.

Tasks import the services they run (module level); services never import tasks. A service names the task it
wants run, and this module imports it lazily, here and nowhere else — so there is no services↔tasks import
cycle, and a transaction that rolls back queues nothing.
"""

from __future__ import annotations

from datetime import datetime
from importlib import import_module

from django.db import transaction


def send(name: str, *args: object, eta: datetime | None = None) -> None:
    """Queue the task `package.tasks.function` now (the caller has nothing uncommitted it depends on)."""
    module, function = name.rsplit(".", 1)
    getattr(import_module(module), function).apply_async(args=list(args), eta=eta)


def on_commit(name: str, *args: object, eta: datetime | None = None) -> None:
    """Queue the task once the current transaction commits (now, outside one)."""
    transaction.on_commit(lambda: send(name, *args, eta=eta))
