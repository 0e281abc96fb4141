"""allauth adapters: partner IdPs are the only way in for partner users, and identity is (IdP, subject).

- IdPs come from `IdentityProvider` rows (decrypted secret, in-memory SocialApp), never from allauth's own table.
- A sign-in is refused unless the IdP and its partner are active and, for a known account, the user belongs to
  that IdP's partner. Email never links, connects or finds an account.
"""

from __future__ import annotations

import hashlib
from typing import Any, NoReturn

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from allauth.socialaccount.providers.base import AuthProcess
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import render

from partners import services
from partners.models import IdentityProvider, Partner
from partners.selectors import identity_provider_by_provider_id
from portal.crypto import decrypt
from portal.models import User


class PorteAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # Local accounts are for Porte staff and are created by an admin; partners never get a password.
        return False


def social_app_for(idp: IdentityProvider) -> SocialApp:
    """allauth's view of an IdP (unsaved: the row in `IdentityProvider` is the source of truth)."""
    return SocialApp(
        provider="openid_connect",
        provider_id=idp.provider_id,
        name=idp.display_name,
        client_id=idp.client_id,
        secret=decrypt(idp.client_secret_encrypted),
        settings={
            "server_url": idp.issuer,
            "oauth_pkce_enabled": True,
            "token_auth_method": "client_secret_basic",
            "fetch_userinfo": False,
            "scope": ["openid", "email", "profile", "groups"],
        },
    )


def _claims(sociallogin: SocialLogin) -> dict[str, Any]:
    data = sociallogin.account.extra_data or {}
    merged: dict[str, Any] = {}
    merged.update(data.get("id_token") or {})
    merged.update(data.get("userinfo") or {})
    return merged


def _groups(claims: dict[str, Any]) -> list[str]:
    groups = claims.get("groups") or []
    if isinstance(groups, str):
        groups = [groups]
    return [str(g)[:100] for g in groups if str(g).strip()][:200]


class PartnerSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(
        self, request: HttpRequest | None, provider: str | None = None, client_id: str | None = None
    ) -> list[SocialApp]:
        idps = IdentityProvider.objects.select_related("partner").filter(
            is_enabled=True, partner__status__in=[Partner.Status.ACTIVE, Partner.Status.ONBOARDING]
        )
        if provider and provider != "openid_connect":
            idps = idps.filter(provider_id=provider)
        if client_id:
            idps = idps.filter(client_id=client_id)
        return [social_app_for(idp) for idp in idps]

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def _refuse(
        self,
        request: HttpRequest,
        idp: IdentityProvider | None,
        provider_id: str,
        reason: str,
        subject: str,
        message: str,
    ) -> NoReturn:
        services.sign_in_refuse(
            identity_provider=idp, provider_id=provider_id, reason=reason, subject=subject
        )
        raise ImmediateHttpResponse(
            render(request, "partners/sign_in_refused.html", {"message": message}, status=403)
        )

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        provider_id = sociallogin.account.provider
        subject = sociallogin.account.uid
        idp = identity_provider_by_provider_id(provider_id)
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            self._refuse(
                request,
                idp,
                provider_id,
                "connect_attempt",
                subject,
                "Linking another sign-in method to your account is not possible in Porte.",
            )
        if idp is None or not idp.is_enabled or not idp.partner.is_active:
            self._refuse(
                request,
                idp,
                provider_id,
                "idp_or_partner_inactive",
                subject,
                "Your organisation's access to Porte is not active. Contact your Porte sponsor.",
            )
        assert idp is not None
        if not sociallogin.is_existing:
            return
        user = sociallogin.user
        membership = getattr(user, "membership", None)
        if user.is_staff or membership is None or membership.partner_id != idp.partner_id:
            self._refuse(
                request,
                idp,
                provider_id,
                "identity_partner_mismatch",
                subject,
                "This identity provider cannot sign in this account.",
            )
        if not user.is_active or not membership.is_active:
            self._refuse(
                request,
                idp,
                provider_id,
                "user_inactive",
                subject,
                "Your Porte account is disabled. Contact your organisation's Porte administrator.",
            )
        services.membership_record_sign_in(membership=membership, groups=_groups(_claims(sociallogin)))

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]) -> Any:
        user = super().populate_user(request, sociallogin, data)
        # Username is internal and derived from the identity, never from the email.
        identity = f"{sociallogin.account.provider}:{sociallogin.account.uid}"
        if len(identity) > 150:
            identity = f"{sociallogin.account.provider[:80]}:{hashlib.sha256(identity.encode()).hexdigest()}"
        user.username = identity
        return user

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> User:
        idp = identity_provider_by_provider_id(sociallogin.account.provider)
        assert idp is not None  # pre_social_login refused otherwise
        with transaction.atomic():
            user: User = super().save_user(request, sociallogin, form)
            services.membership_create_on_first_sign_in(
                user=user, identity_provider=idp, groups=_groups(_claims(sociallogin))
            )
        return user
