"""The ingestion-lag banner of the activity and staff pages, computed only when a template shows it."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from activity.lag import ingestion_lag


def activity_lag(request: HttpRequest) -> dict[str, object]:
    return {"activity_lag": SimpleLazyObject(ingestion_lag)}
