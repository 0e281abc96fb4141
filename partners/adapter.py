"""allauth adapters: partner IdPs are the only way in for partner users, and identity is (IdP, subject).

- IdPs come from `IdentityProvider` rows (see partners.federation.social_app_for), never from allauth's table.
- A sign-in is refused unless the IdP and its partner are active and, for a known account, the user belongs to
  that IdP's partner. Email never links, connects or finds an account; outside the partner's domains it is
  refused (configurable per partner).
- Every refusal is recorded with its reason.
"""

from __future__ import annotations

from typing import Any, NoReturn

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from allauth.socialaccount.providers.base import AuthProcess
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.shortcuts import redirect, render
from django.urls import reverse

from partners import services
from partners.federation import Assertion, assertion_from, social_app_for
from partners.invitations import invitation_in_session
from partners.models import IdentityProvider
from partners.refusals import protocol_refusal
from partners.selectors import (
    identity_provider_in_request,
    remember_identity_providers,
)
from portal.models import User

# Session keys: the staff member's pending "test sign-in" of an IdP, and its result.
IDP_TEST_KEY = "porte_idp_test"
IDP_TEST_RESULT_KEY = "porte_idp_test_result"
# What the IdP asserted about how the person authenticated (used by context checks on requests).
SIGN_IN_EVIDENCE_KEY = "porte_sign_in"


# What a refused known person is told, by the reason the refusal records (services.SignInRefused).
_REFUSALS = {
    "email_outside_partner_domains": "The email address your identity provider gave is not in your organisation's "
    "domains registered with Porte. Ask your organisation's IT team to check your account.",
    "identity_partner_mismatch": "This identity provider cannot sign in this account.",
    "user_inactive": "Your Porte account is disabled. Contact your organisation's Porte administrator.",
}


class PorteAccountAdapter(DefaultAccountAdapter):
    """Local accounts are Porte staff's, created by an administrator; partner people never hold a password."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def set_password(self, user: Any, password: str) -> None:
        if not user.is_staff:
            raise PermissionDenied("Partner people sign in through their organisation's identity provider.")
        super().set_password(user, password)

    def send_password_reset_mail(self, user: Any, email: str, context: dict[str, Any]) -> None:
        if user.is_staff:
            super().send_password_reset_mail(user, email, context)

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        """Staff land on their queues, partner people on their dashboard (a `next` the sign-in carried wins)."""
        if getattr(request.user, "is_staff", False):
            return reverse("staff_home")
        return str(super().get_login_redirect_url(request))


def _tester(request: HttpRequest, idp: IdentityProvider) -> str | None:
    """Who may run a test sign-in through an IdP: staff ("") and the partner's contact holding its open
    invitation (their address); None for anyone else."""
    if request.user.is_authenticated and request.user.is_staff:
        return ""
    invitation = invitation_in_session(request)
    return invitation.email if invitation is not None and invitation.partner_id == idp.partner_id else None


class PartnerSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(
        self, request: HttpRequest | None, provider: str | None = None, client_id: str | None = None
    ) -> list[SocialApp]:
        # allauth asks for the same app many times per sign-in (about 14): answer once per request.
        memo: dict[tuple[str | None, str | None], list[SocialApp]] | None = (
            request.__dict__.setdefault("_porte_social_apps", {}) if request is not None else None
        )
        if memo is not None and (provider, client_id) in memo:
            return memo[(provider, client_id)]
        idps = self._load_idps(provider, client_id)
        apps = [social_app_for(idp) for idp in idps]
        if memo is not None:
            memo[(provider, client_id)] = apps
            remember_identity_providers(request, idps)
        return apps

    def _load_idps(self, provider: str | None, client_id: str | None) -> list[IdentityProvider]:
        # Whatever the partner's status: a sign-in through a suspended or offboarded partner's IdP must reach
        # pre_social_login, to be refused with a reason and recorded, rather than end in a bare 404.
        idps = IdentityProvider.objects.select_related("partner").filter(is_enabled=True)
        if provider == "openid_connect":
            idps = idps.filter(protocol=IdentityProvider.Protocol.OIDC)
        elif provider == "saml":
            idps = idps.filter(protocol=IdentityProvider.Protocol.SAML)
        elif provider:
            idps = idps.filter(provider_id=provider)
        if client_id:
            # allauth looks SAML apps up by organisation slug (our provider_id), OIDC apps by client id.
            idps = idps.filter(
                Q(protocol=IdentityProvider.Protocol.OIDC, client_id=client_id)
                | Q(protocol=IdentityProvider.Protocol.SAML, provider_id=client_id)
            )
        return list(idps)

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

    def refuse_sign_in(
        self, request: HttpRequest, *, provider_id: str, reason: str, subject: str, message: str
    ) -> NoReturn:
        """Refuse (and record) a sign-in that fails before pre_social_login, e.g. an unsolicited SAML response."""
        self._refuse(
            request, identity_provider_in_request(request, provider_id), provider_id, reason, subject, message
        )

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        # Protocol failures (bad signature, state, nonce, issuer, replay...) count as refused sign-ins too.
        provider_id = getattr(getattr(provider, "app", None), "provider_id", "") or ""
        reason, detail = protocol_refusal(error, exception, extra_context)
        services.sign_in_refuse(
            identity_provider=identity_provider_in_request(request, provider_id) if provider_id else None,
            provider_id=provider_id,
            reason=reason,
            detail=detail,
        )

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        provider_id = sociallogin.account.provider
        subject = sociallogin.account.uid
        # Email is a display attribute: allauth must not refuse (or route) a new identity because another user,
        # perhaps of another partner, already has the address the IdP asserts.
        sociallogin.email_addresses = []
        idp = identity_provider_in_request(request, provider_id)

        def refuse(reason: str, message: str) -> NoReturn:
            self._refuse(request, idp, provider_id, reason, subject, message)

        if idp is None or not idp.is_enabled:
            refuse("idp_unknown_or_disabled", "This identity provider is not enabled in Porte.")
        protocol_refusal = getattr(sociallogin, "porte_refusal", None)
        if protocol_refusal:
            refuse(protocol_refusal, "Your identity provider's answer could not be accepted. Sign in again.")
        if sociallogin.state.get("process") == AuthProcess.CONNECT:
            refuse(
                "connect_attempt", "Linking another sign-in method to your account is not possible in Porte."
            )
        assertion = assertion_from(idp, sociallogin)
        if request.session.get(IDP_TEST_KEY) == idp.pk and (contact := _tester(request, idp)) is not None:
            self._finish_test_sign_in(request, idp, assertion, contact)
        if not idp.partner.is_active:
            refuse(
                "partner_inactive",
                "Your organisation's access to Porte is not active. Contact your Porte sponsor.",
            )
        if sociallogin.account.pk is None and (
            idp.partner.enforce_email_domains
            and not services.email_in_partner_domains(idp.partner, assertion.email)
        ):
            # A first sign-in; a known person's is judged with their membership, below.
            refuse("email_outside_partner_domains", _REFUSALS["email_outside_partner_domains"])
        request.session[SIGN_IN_EVIDENCE_KEY] = {
            "provider_id": provider_id,
            "mfa": assertion.mfa,
            "authn_methods": assertion.authn_methods,
            "claims": assertion.attributes,
        }
        if sociallogin.account.pk is None:
            return  # a first sign-in: allauth's lookup found no account for this (IdP, subject)
        try:
            # With its partner and IdP, which the person's standing reads right after the sign-in.
            sociallogin.user.membership = services.membership_record_sign_in(
                user=sociallogin.user,
                identity_provider=idp,
                groups=None if idp.groups_from_directory else assertion.groups,
                email=assertion.email,
                name=assertion.name,
            )
        except services.SignInRefused as refused:
            refuse(refused.reason, _REFUSALS[refused.reason])

    def _finish_test_sign_in(
        self, request: HttpRequest, idp: IdentityProvider, assertion: Assertion, contact: str
    ) -> NoReturn:
        """A test of a (possibly not yet active) IdP, by staff (`contact` "") or the partner's invited contact:
        show what it asserted, create nobody."""
        request.session.pop(IDP_TEST_KEY, None)
        request.session[IDP_TEST_RESULT_KEY] = assertion.claims_summary()
        staff = not contact
        services.identity_provider_verified(
            identity_provider=idp,
            actor=request.user if staff else None,  # type: ignore[arg-type]
            claims=assertion.claims_summary(),
            contact=contact,
        )
        if staff:
            raise ImmediateHttpResponse(redirect("partner_idp_test_result", provider_id=idp.provider_id))
        raise ImmediateHttpResponse(redirect(f"{reverse('onboarding')}#test"))

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data: dict[str, Any]) -> Any:
        user = super().populate_user(request, sociallogin, data)
        user.username = services.partner_username(
            provider_id=sociallogin.account.provider, subject=sociallogin.account.uid
        )
        return user

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> User:
        idp = identity_provider_in_request(request, sociallogin.account.provider)
        assert idp is not None  # pre_social_login refused otherwise
        assertion = assertion_from(idp, sociallogin)
        with transaction.atomic():
            user: User = super().save_user(request, sociallogin, form)
            services.membership_create_on_first_sign_in(
                user=user, identity_provider=idp, groups=[] if idp.groups_from_directory else assertion.groups
            )
        return user
