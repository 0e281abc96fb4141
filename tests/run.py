"""`make test`: pick the real services this machine has, then run pytest.

PostgreSQL and Redis on 127.0.0.1 are used when they answer (as in CI); otherwise SQLite and kombu's
filesystem broker. Explicit DATABASE_URL / CELERY_BROKER_URL in the environment always win.
"""

from __future__ import annotations

import os
import socket
import sys

PG_URL = "postgres://postgres@127.0.0.1:5432/porte"
REDIS_URL = "redis://127.0.0.1:6379/15"
CACHE_URL = "rediscache://127.0.0.1:6379/12"


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> int:
    if "DATABASE_URL" not in os.environ and _answers(5432):
        os.environ["DATABASE_URL"] = PG_URL
    if _answers(6379):
        os.environ.setdefault("CELERY_BROKER_URL", REDIS_URL)
        os.environ.setdefault("CACHE_URL", CACHE_URL)
    print(
        f"tests: database {os.environ.get('DATABASE_URL', 'SQLite (var/test-porte.sqlite3)')}, "
        f"broker {os.environ.get('CELERY_BROKER_URL', 'filesystem (var/broker)')}",
        flush=True,
    )
    import pytest

    return pytest.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
