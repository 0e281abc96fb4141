"""How services queue Celery tasks: by the task's dotted name, once the current transaction has committed.

Tasks import the services they run (module level); services never import tasks. A service names the task it
wants run, and this module imports it lazily, here and nowhere else — so there is no services↔tasks import
cycle, and a transaction that rolls back queues nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from importlib import import_module
from typing import Any

from django.db import transaction


def task(name: str) -> Any:
    """The task `package.tasks.function`, imported on first use."""
    module, function = name.rsplit(".", 1)
    return getattr(import_module(module), function)


def send(name: str, *args: object, eta: datetime | None = None) -> None:
    """Queue the task now (the caller has nothing uncommitted it depends on)."""
    task(name).apply_async(args=list(args), eta=eta)


def on_commit(name: str, *args: object, eta: datetime | None = None) -> None:
    """Queue the task once the current transaction commits (now, outside one)."""
    transaction.on_commit(_sender(name, args, eta))


def _sender(name: str, args: tuple[object, ...], eta: datetime | None) -> Callable[[], None]:
    return lambda: send(name, *args, eta=eta)
