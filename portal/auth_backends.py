"""The one authentication backend: passwords sign in Porte staff only; every session loads its person's place.

Partner people never hold a usable password (they sign in through their IdP, which allauth's social login does
without any backend's `authenticate`). A password login for anybody who is not staff fails exactly like a wrong
password, whether the account exists or not.
"""

from __future__ import annotations

from typing import Any

from allauth.account.auth_backends import AuthenticationBackend
from django.contrib.auth import get_user_model
from django.http import HttpRequest


class PorteBackend(AuthenticationBackend):
    def authenticate(self, request: HttpRequest | None, **credentials: Any) -> Any:
        user = super().authenticate(request, **credentials)
        if user is None or not user.is_staff:
            return None
        return user

    def get_user(self, user_id: Any) -> Any:
        # One query for the person and their place (membership, partner, IdP): the gate reads them on every
        # request. The names belong to the partners app; portal imports no app. An inactive account is returned
        # too, so the gate ends its session with a reason on record instead of it silently becoming anonymous.
        return (
            get_user_model()
            ._default_manager.select_related("membership__partner", "membership__identity_provider")
            .filter(pk=user_id)
            .first()
        )
