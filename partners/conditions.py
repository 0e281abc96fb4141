"""The conditions a partner sets on all its people's access, whatever the role: its access window and its
networks. Pure reads: the caller records the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from partners.models import Partner, ip_allowed
from partners.windows import window_for


@dataclass(frozen=True)
class Refusal:
    condition: str  # access_window | source_ip | mfa | device_posture
    message: str


def window_refusal(partner: Partner, at: datetime) -> Refusal | None:
    window = window_for(partner)
    if window is None or window.contains(at):
        return None
    opens = window.opens_after(at)
    when = (
        f"it opens again at {opens.astimezone(window.timezone):%a %Y-%m-%d %H:%M} ({window.timezone.key})"
        if opens
        else "it has no open day"
    )
    return Refusal("access_window", f"{partner.name}'s access window is {window.describe()}; {when}.")


def window_close(partner: Partner, at: datetime) -> datetime | None:
    """When the open period containing `at` ends (None: the partner has no window)."""
    window = window_for(partner)
    return window.closes_after(at) if window else None


def ip_refusal(partner: Partner, source_ip: str | None) -> Refusal | None:
    if ip_allowed(partner.source_ip_allowlist, source_ip):
        return None
    return Refusal(
        "source_ip",
        f"{partner.name} allows access only from its registered networks; "
        f"{source_ip or 'your address'} is not one of them.",
    )
