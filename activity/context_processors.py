"""The ingestion-lag banner of the activity and staff pages, computed only when a template shows it."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from activity.lag import ingestion_lag


def activity_lag(request: HttpRequest) -> dict[str, object]:
    # As the person may know it: their own scope's newest event, their partner's stalled accounts and regions.
    viewer = getattr(request, "user", None)
    return {"activity_lag": SimpleLazyObject(lambda: ingestion_lag(viewer=viewer))}
