"""Business limits, each with one source: the services enforce them, and forms, API serializers and templates
read them from here so that what a page offers is what the server accepts."""

from __future__ import annotations

from datetime import timedelta

REQUEST_MIN_MINUTES = 15
ROLE_MIN_MINUTES = 15
ROLE_MAX_MINUTES = 12 * 60  # the longest STS role session AWS allows
EXTEND_MIN_MINUTES = 5
EXTEND_MAX_MINUTES = ROLE_MAX_MINUTES
TEXT_MAX_CHARS = 2000  # justifications, reasons, comments: the web and the API accept the same
GROUP_NAME_MAX_CHARS = 256
GROUPS_MAX = 200

SHORTEST_REQUEST = f"The shortest access is {REQUEST_MIN_MINUTES} minutes."

REQUEST_MIN = timedelta(minutes=REQUEST_MIN_MINUTES)
EXTEND_MIN = timedelta(minutes=EXTEND_MIN_MINUTES)
ROLE_MIN = timedelta(minutes=ROLE_MIN_MINUTES)
ROLE_MAX = timedelta(minutes=ROLE_MAX_MINUTES)


def too_long(**texts: str) -> dict[str, str]:
    """Errors for the texts longer than TEXT_MAX_CHARS, keyed by field: refused with a message, never cut."""
    return {
        field: f"At most {TEXT_MAX_CHARS} characters (this has {len(text)})."
        for field, text in texts.items()
        if len(text) > TEXT_MAX_CHARS
    }
