"""Helpers of the alert tests: load built records the way ingestion does (load_log, in the test's transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from django.conf import settings

from activity import loading
from activity.attribution import Attributor
from activity.models import Alert
from activity.simulator import CloudTrailSimulator


def load(
    sim: CloudTrailSimulator, account: str, records: list[dict[str, Any]], at: datetime
) -> tuple[int, int]:
    """One log file of `records`, kept and its events inserted and judged (the rules run in load_log)."""
    key = sim.log_key(account, at)
    loaded = loading.load_log(
        bucket=settings.ACTIVITY_TRAIL_BUCKET,
        key=key,
        content=sim.encode(records),
        data=orjson.dumps({"Records": records}),
        attributor=Attributor(),
    )
    return loaded.events, len(loaded.inserted)


def alerts(rule: str | None = None) -> list[Alert]:
    found = Alert.objects.order_by("pk")
    return list(found.filter(rule=rule) if rule else found)
