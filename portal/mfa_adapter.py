"""allauth.mfa's adapter, for Porte: second factors are staff's (partner people's come from their IdP)."""

from __future__ import annotations

from typing import Any

from allauth.mfa.adapter import DefaultMFAAdapter


class PorteMFAAdapter(DefaultMFAAdapter):
    def is_mfa_enabled(self, user: Any, types: Any = None) -> bool:
        # Partner people cannot reach the pages that add a factor (portal.gate): asking the database at each of
        # their sign-ins would only ever answer no.
        if not getattr(user, "is_staff", False):
            return False
        return bool(super().is_mfa_enabled(user, types))
