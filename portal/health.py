"""Health: the checks behind /health/, and the samples of them kept for the availability figure."""

from __future__ import annotations

from django.db import connection

from portal.models import HealthSample


def database_reachable() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return False
    return True


def health_sample_record() -> HealthSample | None:
    """Run the /health/ checks and keep the outcome. When the database itself is down nothing can be kept: that
    sample is missing, which is why availability is also reported with the count of samples it rests on."""
    ok = database_reachable()
    try:
        return HealthSample.objects.create(ok=ok, detail="" if ok else "database unavailable")
    except Exception:
        return None
