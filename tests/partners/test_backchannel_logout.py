"""Logout that starts at the partner's IdP (OpenID Connect Back-Channel Logout 1.0).

With oidc-provider itself: Alice signs out at her IdP and her Porte session ends, while her session in another
browser (another IdP session, another `sid`) goes on. Then hostile logout tokens, one failed check each: these
are signed with a key the test holds, which it puts where Porte keeps the IdP's keys (its cache), since
oidc-provider signs only good tokens. Each is refused with 400, audited with the check that failed, and ends
nothing."""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import urljoin

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client

from partners.logout import LOGOUT_EVENT
from partners.models import FederatedSession
from portal.models import AuditEvent, User
from tests.fixtures.domain import World, build_partner, make_member, sign_in_as
from tests.fixtures.peers import ALICE, running_idp
from tests.helpers import begin_oidc_sign_in, cached_issuer_key, session_user_id
from tests.peers.common import FormParser
from tests.peers.oidc_idp import sign_in

ISSUER = "http://127.0.0.1:1"  # build_partner's issuer: nothing listens there, the keys come from the cache
KID = "test-key-1"


# --- with the real IdP -----------------------------------------------------------------------------------------


def _sign_out_at_idp(browser: requests.Session, issuer: str) -> None:
    """What a person does at their IdP: its end-session page, and the sign-out form it submits."""
    page = browser.get(f"{issuer}/session/end")
    page.raise_for_status()
    parser = FormParser()
    parser.feed(page.text)
    form = parser.forms[0]
    done = browser.post(urljoin(page.url, form.action), data={**form.fields, "logout": "yes"})
    done.raise_for_status()


@pytest.mark.idp
@pytest.mark.django_db(transaction=True)
def test_signing_out_at_the_idp_ends_that_porte_session_only(live_server: Any, local_aws: str) -> None:
    client = {
        "client_id": "porte-acme",
        "client_secret": "acme-client-secret",
        "redirect_uris": [f"{live_server.url}/accounts/oidc/acme/login/callback/"],
        # Node resolves `localhost` to ::1 first, where the live server does not listen.
        "backchannel_logout_uri": f"{live_server.url.replace('localhost', '127.0.0.1')}"
        "/accounts/oidc/acme/backchannel-logout/",
    }
    idp = running_idp([client], [ALICE], title="Acme Corp sign-in")
    try:
        build_partner("acme", issuer=idp.issuer, client_secret="acme-client-secret", provision=False)
        laptop, phone = requests.Session(), requests.Session()
        for browser in (laptop, phone):
            landed = sign_in(
                browser, begin_oidc_sign_in(browser, live_server.url, "acme"), "alice", "alice-pw"
            )
            assert landed.url == f"{live_server.url}/", landed.text[:300]
        alice = User.objects.get(socialaccount__uid="acme-0001")
        assert session_user_id(laptop) == session_user_id(phone) == str(alice.pk)
        sids = set(FederatedSession.objects.filter(subject="acme-0001").values_list("sid", flat=True))
        assert len(sids) == 2 and "" not in sids

        started = time.monotonic()
        _sign_out_at_idp(laptop, idp.issuer)
        took = time.monotonic() - started
        print(
            f"back-channel logout: the IdP's sign-out, logout token included, took {took * 1000:.0f} ms"
        )  # -s

        assert session_user_id(laptop) is None, idp.log()
        assert laptop.get(f"{live_server.url}/").url.startswith(f"{live_server.url}/sign-in/")
        assert session_user_id(phone) == str(alice.pk)  # her other session is another IdP session
        assert phone.get(f"{live_server.url}/").url == f"{live_server.url}/"
        logout = AuditEvent.objects.get(action="session.idp_logout")
        assert logout.object_id == str(alice.pk)
        assert logout.data == {"how": "oidc_backchannel", "sessions_ended": 1, "by_sid": True}
        assert not AuditEvent.objects.filter(action="idp.logout_refused").exists()
    finally:
        idp.stop()


# --- hostile logout tokens -------------------------------------------------------------------------------------


@pytest.fixture
def keys() -> ec.EllipticCurvePrivateKey:
    """The partner IdP's signing key as Porte will find it: its discovery document and JWKS in Porte's cache."""
    return cached_issuer_key(ISSUER, KID)


def _token(
    key: Any, *, drop: tuple[str, ...] = (), headers: dict[str, Any] | None = None, **claims: Any
) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": "porte-acme",
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "sub": "acme-0001",
        "events": {LOGOUT_EVENT: {}},
        **claims,
    }
    for name in drop:
        body.pop(name)
    header = {"kid": KID, "typ": "logout+jwt", **(headers or {})}
    return jwt.encode(body, key, algorithm="ES256", headers=header)


def _alice_signed_in(acme: World) -> tuple[User, Client]:
    alice = make_member(acme.partner, "acme.acme-0001")
    browser = sign_in_as(Client(), alice)
    FederatedSession.objects.create(
        identity_provider=acme.partner.identity_providers.get(),
        subject="acme-0001",
        sid="sid-1",
        session_key=browser.session.session_key,
        user=alice,
    )
    return alice, browser


def _post(token: str, provider_id: str = "acme") -> Any:
    return Client().post(f"/accounts/oidc/{provider_id}/backchannel-logout/", {"logout_token": token})


@pytest.mark.django_db
def test_each_failed_check_refuses_the_token_audits_it_and_ends_nothing(acme: World, keys: Any) -> None:
    _alice, browser = _alice_signed_in(acme)
    stranger = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    hostile = {
        "signature": _token(stranger),
        "algorithm": jwt.encode(
            {"iss": ISSUER},
            "secret-secret-secret-secret-secret",
            algorithm="HS256",
            headers={"kid": KID, "typ": "logout+jwt"},
        ),
        "iss": _token(keys, iss="http://elsewhere.example"),
        "aud": _token(keys, aud="someone-else"),
        "exp": _token(keys, exp=now - 3600, iat=now - 3700),
        "iat": _token(keys, iat=now - 3600),
        "events": _token(keys, events={"http://schemas.openid.net/event/other": {}}),
        "nonce": _token(keys, nonce="n-0S6_WzA2Mj"),
        "sub_or_sid": _token(keys, drop=("sub",)),
        "missing_jti": _token(keys, drop=("jti",)),
        "missing_iat": _token(keys, drop=("iat",)),
        "typ": _token(keys, headers={"typ": "JWT"}),
        "malformed": "not.a.token",
    }
    hostile["events"] = _token(keys, events={LOGOUT_EVENT: "yes"})
    for check, token in hostile.items():
        response = _post(token)
        assert response.status_code == 400, (check, response.content)
        assert response.json()["error"] == "invalid_request" and check not in response.content.decode()
        recorded = AuditEvent.objects.filter(action="idp.logout_refused").order_by("-pk").first()
        assert recorded is not None and recorded.data["check"] == check, (check, recorded and recorded.data)
        assert browser.get("/").status_code == 200, f"{check}: the session ended"
    assert FederatedSession.objects.count() == 1


@pytest.mark.django_db
def test_a_replayed_token_is_refused(acme: World, keys: Any) -> None:
    token = _token(keys, sid="sid-other")  # names no session of Alice's: accepted, ends nothing
    _alice_signed_in(acme)
    assert _post(token).status_code == 200
    assert _post(token).status_code == 400
    assert AuditEvent.objects.get(action="idp.logout_refused").data["check"] == "replayed"
    assert FederatedSession.objects.count() == 1


@pytest.mark.django_db
def test_a_good_token_ends_the_sessions_it_names(acme: World, keys: Any) -> None:
    _alice, browser = _alice_signed_in(acme)
    response = _post(_token(keys, sid="sid-1"))
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert browser.get("/").status_code == 302
    assert not FederatedSession.objects.exists()
    assert AuditEvent.objects.get(action="session.idp_logout").object_id == str(_alice.pk)


@pytest.mark.django_db
def test_an_unknown_or_saml_provider_has_no_back_channel(acme: World, keys: Any) -> None:
    assert _post(_token(keys), provider_id="nobody").status_code == 400
    assert AuditEvent.objects.get(action="idp.logout_refused").data == {
        "provider_id": "nobody",
        "check": "identity_provider",
    }
    assert Client().get("/accounts/oidc/acme/backchannel-logout/").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_a_logout_that_comes_while_its_sign_in_completes_ends_that_sign_in(acme: World) -> None:
    from django.test import RequestFactory

    from partners.logout import federated_session_record, federated_sessions_end
    from portal.sessions import SessionStore

    idp = acme.partner.identity_providers.get()
    alice = make_member(acme.partner, "acme.acme-0001")
    # The IdP's logout is handled first and finds no session of that sid yet: the sign-in is still completing.
    assert (
        federated_sessions_end(identity_provider=idp, subject=None, sid="sid-9", how="oidc_backchannel") == 0
    )
    request = RequestFactory().get("/accounts/oidc/acme/login/callback/")
    request.session = SessionStore()
    request.session["_auth_user_id"] = str(alice.pk)
    federated_session_record(
        request=request, identity_provider=idp, subject="acme-0001", sid="sid-9", user=alice
    )
    assert request.session.session_key is None and not request.session.items()
    assert not FederatedSession.objects.exists()
    ended = AuditEvent.objects.filter(action="session.idp_logout").order_by("pk").last()
    assert ended is not None and ended.object_id == str(alice.pk) and ended.data["how"] == "during_sign_in"
    # Another IdP session of the same person signs in as usual.
    request.session = SessionStore()
    request.session["_auth_user_id"] = str(alice.pk)
    federated_session_record(
        request=request, identity_provider=idp, subject="acme-0001", sid="sid-10", user=alice
    )
    assert FederatedSession.objects.get().session_key == request.session.session_key
    assert SessionStore(request.session.session_key).get("_auth_user_id") == str(alice.pk)
