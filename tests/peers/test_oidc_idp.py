"""The local OIDC IdP peer speaks standard OpenID Connect: discovery, authorization code with
PKCE (S256), client_secret_basic/post at the token endpoint, and an ID token that carries the
user's email, groups, amr and acr. Nothing listens at the client's redirect_uri: the flow stops
at the redirect to it. The ID token signature is not verified here (the relying party does that)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from .oidc_idp import OidcIdp, OidcUser, free_port, sign_in

CLIENT_ID = "porte-test"
CLIENT_SECRET = "porte-test-secret"
ALICE = OidcUser(
    username="alice",
    password="alice-pw",
    sub="acme-0001",
    email="alice@acme.example",
    name="Alice Martin",
    groups=["engineers"],
    amr=["pwd", "otp"],
    acr="urn:porte:mfa",
)
REDIRECT_URI = f"http://127.0.0.1:{free_port()}/cb"


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcIdp]:
    client = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]}
    with OidcIdp([client], [ALICE], title="Acme Corp sign-in") as running:
        yield running


@pytest.fixture(scope="module")
def metadata(idp: OidcIdp) -> dict[str, Any]:
    response = requests.get(idp.discovery_url, timeout=5)
    response.raise_for_status()
    return dict(response.json())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_payload(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def _authorization_url(metadata: dict[str, Any], state: str, nonce: str, verifier: str | None) -> str:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile groups",
        "state": state,
        "nonce": nonce,
    }
    if verifier is not None:
        params["code_challenge"] = _b64url(hashlib.sha256(verifier.encode()).digest())
        params["code_challenge_method"] = "S256"
    return f"{metadata['authorization_endpoint']}?{urlencode(params)}"


def _token_request(metadata: dict[str, Any], form: dict[str, str], auth_method: str) -> requests.Response:
    if auth_method == "client_secret_basic":
        return requests.post(
            metadata["token_endpoint"], data=form, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
        )
    assert auth_method == "client_secret_post"
    form = {**form, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    return requests.post(metadata["token_endpoint"], data=form, timeout=5)


def test_discovery(idp: OidcIdp, metadata: dict[str, Any]) -> None:
    assert metadata["issuer"] == idp.issuer
    assert "S256" in metadata["code_challenge_methods_supported"]
    assert {"openid", "email", "profile", "groups"} <= set(metadata["scopes_supported"])
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
def test_code_flow_with_pkce(idp: OidcIdp, metadata: dict[str, Any], auth_method: str) -> None:
    state, nonce, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(16), secrets.token_urlsafe(48)
    session = requests.Session()

    response = sign_in(
        session,
        _authorization_url(metadata, state, nonce, verifier),
        ALICE.username,
        ALICE.password,
        follow_callback=False,
    )

    assert response.status_code in (302, 303)
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    assert query["iss"] == [idp.issuer]
    code = query["code"][0]

    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    token_response = _token_request(metadata, form, auth_method)
    assert token_response.status_code == 200, token_response.text
    tokens = token_response.json()
    assert tokens["token_type"].lower() == "bearer"

    claims = _jwt_payload(tokens["id_token"])
    assert claims["iss"] == idp.issuer
    assert claims["aud"] == CLIENT_ID
    assert claims["nonce"] == nonce
    assert claims["sub"] == ALICE.sub
    assert claims["email"] == ALICE.email
    assert claims["email_verified"] is True
    assert claims["name"] == ALICE.name
    assert claims["groups"] == ALICE.groups
    assert claims["amr"] == ALICE.amr
    assert claims["acr"] == ALICE.acr
    assert isinstance(claims["auth_time"], int)

    userinfo = requests.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == ALICE.sub
    assert userinfo.json()["email"] == ALICE.email

    # An authorization code is single-use.
    replay = _token_request(metadata, form, auth_method)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


def test_wrong_password_shows_error_and_stays_on_idp(idp: OidcIdp, metadata: dict[str, Any]) -> None:
    session = requests.Session()
    url = _authorization_url(metadata, "st", "nn", secrets.token_urlsafe(48))

    response = sign_in(session, url, ALICE.username, "not-the-password", follow_callback=False)

    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert "Acme Corp sign-in" in response.text
    assert "Location" not in response.headers
    assert response.url.startswith(idp.issuer + "/interaction/")
    assert REDIRECT_URI not in response.text


def test_pkce_is_required(metadata: dict[str, Any]) -> None:
    response = requests.get(
        _authorization_url(metadata, "st", "nn", verifier=None), allow_redirects=False, timeout=5
    )

    assert response.is_redirect
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "PKCE" in query["error_description"][0]
