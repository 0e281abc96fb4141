"""OpenID Connect sign-in, hardened on top of allauth's `openid_connect` provider.

allauth gives PKCE, a single-use state bound to the provider it was issued for, and issuer/audience/expiry checks.
Porte adds what a bank's security team asks for and allauth leaves out:
- a nonce in every authorisation request, checked in the ID token;
- the ID token's signature always verified (allauth skips it for tokens fetched over TLS), with an algorithm
  allow-list;
- the issuer pinned to the one validated at onboarding, also against a changed discovery document;
- the RFC 9207 `iss` authorisation-response parameter checked when the IdP sends it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

import jwt
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from requests import RequestException

from partners import idp_metadata
from partners.idp_validation import ALLOWED_ID_TOKEN_ALGORITHMS
from partners.refusals import OidcRefused
from portal.access import public

UNREACHABLE = (
    "Your organisation's identity provider cannot be reached just now, so Porte cannot sign you in. "
    "Try again in a few minutes; if it persists, tell your IT team."
)


class PorteOidcAdapter(OpenIDConnectOAuth2Adapter):
    # The state unstashed by the callback view: it carries the nonce sent with the authorisation request.
    state: dict[str, Any] | None = None

    def get_provider(self) -> Any:
        # allauth builds the provider (and its app) afresh each time it is asked, a dozen times per sign-in; an
        # adapter lives for one request.
        provider = self.__dict__.get("_provider")
        if provider is None:
            provider = self._provider = super().get_provider()
        return provider

    @property
    def pinned_issuer(self) -> str:
        return str(self.get_provider().app.settings["issuer"])

    @property
    def openid_config(self) -> dict[str, Any]:
        """The discovery document, from the cache (partners.idp_metadata) rather than the IdP at every step."""
        config: dict[str, Any] | None = getattr(self, "_openid_config", None)
        if config is None:
            provider = self.get_provider()
            config = idp_metadata.discovery_document(provider.server_url)
            config.update(provider.app.settings.get("openid_configuration_overrides", {}))
            self._openid_config = config
        if config.get("issuer") != self.pinned_issuer:
            raise OidcRefused(
                "issuer_changed", "The IdP's discovery document names another issuer than the one onboarded."
            )
        return config

    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict[str, Any]:
        try:
            algorithm = jwt.get_unverified_header(id_token).get("alg")
        except jwt.PyJWTError as exc:
            raise OidcRefused("id_token_malformed", "The ID token is malformed.") from exc
        if algorithm not in ALLOWED_ID_TOKEN_ALGORITHMS:
            raise OidcRefused(
                "id_token_algorithm", f"ID token algorithm {str(algorithm)[:20]!r} is not accepted."
            )
        # allauth's jwtkit.verify_and_decode, with the keys from the cache (fetched again on an unknown kid).
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=idp_metadata.signing_key(self.openid_config["jwks_uri"], id_token),
                algorithms=[algorithm],
                options={
                    "verify_signature": True,
                    "verify_iss": True,
                    "verify_aud": True,
                    "verify_exp": True,
                },
                issuer=self.pinned_issuer,
                audience=app.client_id,
            )
        except jwt.PyJWTError as exc:
            raise OAuth2Error("Invalid id_token") from exc
        jwtkit.verify_jti(claims)
        expected = (self.state or {}).get("nonce")
        if not expected or not hmac.compare_digest(str(claims.get("nonce", "")), str(expected)):
            raise OidcRefused("id_token_nonce", "The ID token's nonce does not match this sign-in.")
        return claims


class PorteOidcProvider(OpenIDConnectProvider):
    """Replaces allauth's class for the `openid_connect` id (SOCIALACCOUNT_PROVIDERS[...]['provider_class'])."""

    oauth2_adapter_class = PorteOidcAdapter
    # allauth's URL patterns for this id stay allauth's (the callback is overridden in portal/urls.py).
    package = "allauth.socialaccount.providers.openid_connect"

    def redirect(
        self, request: HttpRequest, process: Any, next_url: Any = None, data: Any = None, **kwargs: Any
    ) -> HttpResponse:
        nonce = secrets.token_urlsafe(32)
        auth_params = kwargs.pop("auth_params", None) or self.get_auth_params()
        try:
            response: HttpResponse = super().redirect(
                request,
                process,
                next_url,
                data,
                auth_params={**auth_params, "nonce": nonce},
                nonce=nonce,
                **kwargs,
            )
        except (RequestException, OAuth2Error) as exc:
            # Discovery failed before the browser left Porte (IdP down, or its document changed issuer).
            get_social_adapter(request).on_authentication_error(request, self, exception=exc)
            return render(
                request,
                "partners/sign_in_refused.html",
                {"message": UNREACHABLE if isinstance(exc, RequestException) else str(exc)},
                status=403,
            )
        return response


class PorteOidcCallbackView(OAuth2CallbackView):
    def _get_state(self, request: HttpRequest, provider: Any) -> Any:
        state, response = super()._get_state(request, provider)
        self.adapter.state = state
        return state, response

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        issuer = request.GET.get("iss")
        if issuer is not None and issuer != self.adapter.pinned_issuer:
            # RFC 9207: the response comes from another IdP than the one this sign-in was sent to (mix-up).
            return render_authentication_error(
                request,
                self.adapter.get_provider(),
                exception=OidcRefused("iss_mismatch", f"The response's iss is {issuer[:200]!r} (mix-up)."),
            )
        response: HttpResponse = super().dispatch(request, *args, **kwargs)
        return response


@public
def callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """Drop-in for allauth's `openid_connect` callback view, using the hardened adapter."""
    from django.http import Http404

    try:
        adapter = PorteOidcAdapter(request, provider_id)
        view = PorteOidcCallbackView.adapter_view(adapter)
        response: HttpResponse = view(request)
        return response
    except SocialApp.DoesNotExist:
        raise Http404 from None
    except RequestException as exc:
        # The IdP went away between the browser's redirect and its return (discovery or JWKS unreachable).
        return render_authentication_error(request, adapter.get_provider(), exception=exc)
