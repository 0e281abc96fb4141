"""`make test`: pick the real services this machine has, then run pytest.

PostgreSQL and Redis on 127.0.0.1 are used when they answer (as in CI); otherwise SQLite and kombu's
filesystem broker. Explicit DATABASE_URL / CELERY_BROKER_URL in the environment always win.
"""

from __future__ import annotations

import os
import socket
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    args = sys.argv[1:]
    workers = _workers(args)
    print(
        f"tests: database {os.environ.get('DATABASE_URL', 'SQLite (var/test-porte.sqlite3)')}, "
        f"broker {os.environ.get('CELERY_BROKER_URL', 'filesystem (var/broker)')}, "
        f"{workers or 'one'} {'processes' if workers else 'process'}",
        flush=True,
    )
    # The repository on the path, for the plugin below (and pytest-xdist's workers, started here, find it too).
    sys.path.insert(0, REPO_ROOT)
    import pytest

    parallel = ["-n", str(workers), "--dist", "loadfile"] if workers else []
    return pytest.main(["-p", "tests.parallel", *parallel, *args])


def _workers(args: list[str]) -> int:
    """How many pytest processes: PORTE_TEST_WORKERS, else up to 3 (one per core) when PostgreSQL and Redis serve
    the suite (each process then has its own databases: tests/parallel.py); 0 means one process, as does
    SQLite with the filesystem broker, or `-n` given by the caller."""
    if "-n" in args or any(a.startswith("--numprocesses") for a in args):
        return 0
    wanted = os.environ.get("PORTE_TEST_WORKERS")
    if wanted is not None:
        return int(wanted) if int(wanted) > 1 else 0
    served = os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get(
        "CELERY_BROKER_URL", ""
    ).startswith("redis")
    count = min(3, os.cpu_count() or 1)
    return count if served and count > 1 else 0


if __name__ == "__main__":
    sys.exit(main())
