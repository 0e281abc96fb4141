"""What a sign-in asks of the partner's IdP: with the discovery document and the keys in the cache
(partners/idp_metadata.py), one call, the code exchange; the keys again when the IdP rotated them.

Against a real oidc-provider. Porte's outgoing HTTP is observed, not replaced: every request `requests` sends
from this process (the live server's thread included) is recorded with its URL, then sent as usual.
"""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
import requests
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from cryptography.hazmat.primitives.asymmetric import ec

from partners import idp_metadata
from tests.fixtures.domain import build_partner
from tests.fixtures.peers import ALICE, running_idp
from tests.helpers import begin_oidc_sign_in
from tests.peers.oidc_idp import OidcIdp, sign_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    urls: list[str] = []
    send = requests.Session.send

    def recording(self, request, **kwargs):  # type: ignore[no-untyped-def]
        urls.append(request.url)
        return send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording)
    return urls


@pytest.fixture
def idp(live_server, settings) -> Iterator[OidcIdp]:  # type: ignore[no-untyped-def]
    settings.PUBLIC_URL = live_server.url
    client = {
        "client_id": "porte-acme",
        "client_secret": "acme-client-secret",
        "redirect_uris": [f"{live_server.url}/accounts/oidc/acme/login/callback/"],
    }
    running = running_idp([client], [ALICE], title="Acme Corp sign-in")
    yield running
    running.stop()


def _porte_calls(sent: list[str], issuer: str) -> list[str]:
    """The paths Porte asked of the IdP (the test's own browser-like hops to the IdP are the IdP's pages)."""
    own = ("/auth", "/interaction", "/session")
    paths = [url[len(issuer) :].split("?")[0] for url in sent if url.startswith(issuer)]
    return [p for p in paths if not p.startswith(own)]


def test_a_sign_in_asks_the_idp_once_when_its_metadata_is_known(live_server, idp, sent) -> None:  # type: ignore[no-untyped-def]
    build_partner("acme", issuer=idp.issuer, client_secret="acme-client-secret", provision=False)

    for expected in (
        ["/.well-known/openid-configuration", "/token", "/jwks"],  # the first one fills the cache
        ["/token"],
        ["/token"],
    ):
        sent.clear()
        http = requests.Session()
        landed = sign_in(
            http, begin_oidc_sign_in(http, live_server.url, "acme"), ALICE.username, ALICE.password
        )
        assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
        assert _porte_calls(sent, idp.issuer) == expected


def test_an_unknown_key_id_fetches_the_keys_again_once(idp, sent) -> None:  # type: ignore[no-untyped-def]
    keys_url = f"{idp.issuer}/jwks"
    stranger = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode({"sub": "x"}, stranger, algorithm="ES256", headers={"kid": "not-the-idps"})

    for _ in range(3):
        with pytest.raises(OAuth2Error, match="Invalid 'kid'"):
            idp_metadata.signing_key(keys_url, token)
    # The first asks fill the cache and, finding no such key, ask once more; then nothing until REFETCH_SECONDS.
    assert [url for url in sent if url == keys_url] == [keys_url, keys_url]

    unnamed = jwt.encode({"sub": "x"}, stranger, algorithm="ES256")
    with pytest.raises(OAuth2Error, match="names no signing key"):
        idp_metadata.signing_key(keys_url, unnamed)
