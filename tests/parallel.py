"""Loaded first in every pytest process (`tests/run.py` passes `-p tests.parallel`). Under pytest-xdist each worker
process gets its own Redis databases for the Celery broker and the cache, before Django reads its settings: the
worker processes a test starts consume only that test's messages, and per-user throttles and cache keys of one
worker's database never meet another's (ids repeat across the workers' test databases, which pytest-django
already keeps apart). Databases go down from the configured ones (broker 15, 14, 13; cache 12, 11, 10):
up to three workers. Outside xdist this does nothing."""

from __future__ import annotations

import os
import re

_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _worker.startswith("gw"):
    _index = int(_worker[2:])
    for _name in ("CELERY_BROKER_URL", "CACHE_URL"):
        _url = os.environ.get(_name, "")
        _match = re.fullmatch(r"(.*redis[^/]*://[^/]+/)(\d+)", _url)
        if _match:
            os.environ[_name] = f"{_match[1]}{int(_match[2]) - _index}"
