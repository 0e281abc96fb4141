"""Personal API tokens: created on a session-only page that shows the secret once, stored as a hash, accepted as
`Authorization: Bearer` by the API only, refused (401) once revoked, expired or ended, and always scoped to what
their user may do. Each creation and revocation is audited without the secret.

Personas: Alice (Acme engineer) holds an active grant; Mallory (Globex engineer) is the outsider; Sam is staff.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.utils import timezone

from approvals.services import request_create
from grants.models import CredentialIssue, Grant
from grants.services import activation, revocation
from portal import services
from portal.models import ApiToken, AuditEvent, User
from tests.fixtures.domain import make_member, sign_in_as
from tests.helpers import assert_audit_chain_whole

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"porte_[a-z0-9]{8}_[A-Za-z0-9]{40}")


@pytest.fixture
def alice_grant(acme, alice) -> Grant:
    request = request_create(
        requester=alice, role=acme.role, justification="Inventory TICKET-42", duration=timedelta(minutes=30)
    )
    grant = activation.grant_activate(grant_id=request.grant.pk)  # as the worker would, against moto
    assert grant.status == Grant.Status.ACTIVE
    return grant


def _as(user: User) -> Client:
    client = Client()
    sign_in_as(client, user)
    return client


def _bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def _secret_part(secret: str) -> str:
    return secret.rsplit("_", 1)[1]


def _create_on_page(client: Client, name: str = "work laptop", days: int = 90) -> str:
    created = client.post("/tokens/", {"name": name, "lifetime_days": days})
    assert created.status_code == 200, created.content
    shown = TOKEN.findall(created.content.decode())
    assert len(set(shown)) == 1, shown
    return shown[0]


def _page(client: Client) -> str:
    response = client.get("/tokens/")
    assert response.status_code == 200
    return response.content.decode()


# --- creating: the secret is shown once, only its hash is kept ---------------------------------------------------


def test_the_page_shows_the_secret_once_with_a_config_snippet_and_stores_only_its_hash(alice):
    client = _as(alice)
    assert "No tokens yet." in _page(client)

    created = client.post("/tokens/", {"name": "work laptop", "lifetime_days": 30})
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    page = created.content.decode()
    secret = TOKEN.search(page)[0]  # type: ignore[index]
    assert "cannot show it again" in page
    assert f"credential_process = porte credentials --url {settings.PUBLIC_URL}" in page
    assert "region = eu-west-1" in page  # Acme's region, so the profile works as pasted

    token = ApiToken.objects.get()
    assert token.user == alice and token.name == "work laptop"
    assert secret == f"porte_{token.prefix}_{_secret_part(secret)}"
    assert token.key_hash == hashlib.sha256(_secret_part(secret).encode()).hexdigest()
    assert token.expires_at is not None
    assert abs(token.expires_at - (token.created_at + timedelta(days=30))) < timedelta(seconds=1)
    # Nothing stored holds the secret.
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert not any(_secret_part(secret) in str(value) for value in row.values())

    listing = _page(client)
    assert _secret_part(secret) not in listing
    assert f"porte_{token.prefix}_…" in listing and "work laptop" in listing and ">Active<" in listing


def test_a_token_needs_a_name(alice):
    response = _as(alice).post("/tokens/", {"name": "  ", "lifetime_days": 90})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    response = _as(alice).post("/tokens/", {"name": "laptop", "lifetime_days": 10_000})
    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert (
        not ApiToken.objects.exists()
        and not AuditEvent.objects.filter(action__startswith="api_token").exists()
    )


def test_only_partner_users_and_staff_hold_tokens(alice, staff):
    assert _create_on_page(_as(staff), name="staff laptop")
    assert ApiToken.objects.get().user == staff

    # A local account that is neither staff nor a partner person has no standing: its session ends at once.
    local = User.objects.create_user(username="local", password="Local-pw-12345")
    for method, url in [("get", "/tokens/"), ("post", "/tokens/")]:
        response = getattr(_as(local), method)(url, {"name": "laptop", "lifetime_days": 90})
        assert response.status_code == 302 and response["Location"].startswith("/sign-in/?next=/tokens/")
    with pytest.raises(PermissionDenied):
        services.api_token_create(user=local, name="laptop")
    assert "API tokens" in _as(alice).get("/").content.decode()
    assert ApiToken.objects.count() == 1


# --- using: Bearer on the API, as the user ------------------------------------------------------------------------


@pytest.mark.aws
def test_a_bearer_token_acts_as_its_user_on_the_api(alice_grant, alice):
    _, secret = services.api_token_create(user=alice, name="laptop")
    # A real browser client enforcing CSRF: a Bearer token needs none (no cookie is involved).
    api = Client(enforce_csrf_checks=True)

    grants = api.get("/api/v1/grants/", **_bearer(secret))
    assert grants.status_code == 200
    assert [g["id"] for g in grants.json()] == [alice_grant.pk]
    assert api.get("/api/v1/me/", **_bearer(secret)).json()["public_id"] == str(alice.public_id)

    minted = api.post(f"/api/v1/grants/{alice_grant.pk}/credentials/", **_bearer(secret))
    assert minted.status_code == 200, minted.content
    assert minted.json()["Version"] == 1
    assert CredentialIssue.objects.get().grant == alice_grant
    assert ApiToken.objects.get().last_used_at is not None


@pytest.mark.aws
def test_a_token_is_scoped_like_its_user(alice_grant, mallory, acme):
    """Mallory's token sees nothing of Acme, and a colleague's token cannot mint Alice's grant."""
    _, mallory_secret = services.api_token_create(user=mallory, name="laptop")
    api = Client()
    assert alice_grant.pk not in [
        g["id"] for g in api.get("/api/v1/grants/", **_bearer(mallory_secret)).json()
    ]
    for url in (f"/api/v1/grants/{alice_grant.pk}/", f"/api/v1/grants/{alice_grant.pk}/credentials/"):
        method = api.post if url.endswith("credentials/") else api.get
        assert method(url, **_bearer(mallory_secret)).status_code == 404, url

    bob = make_member(acme.partner, "bob")
    _, bob_secret = services.api_token_create(user=bob, name="laptop")
    assert api.post(f"/api/v1/grants/{alice_grant.pk}/credentials/", **_bearer(bob_secret)).status_code == 404
    assert not CredentialIssue.objects.exists()


def test_last_used_is_written_at_most_once_a_minute(alice):
    _, secret = services.api_token_create(user=alice, name="laptop")
    api = Client()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert api.get("/api/v1/roles/", **_bearer(secret)).status_code == 200
        first = ApiToken.objects.get().last_used_at
        assert first == timezone.now()
        clock.shift(timedelta(seconds=30))
        api.get("/api/v1/roles/", **_bearer(secret))
        assert ApiToken.objects.get().last_used_at == first
        clock.shift(timedelta(seconds=31))
        api.get("/api/v1/roles/", **_bearer(secret))
        assert ApiToken.objects.get().last_used_at == timezone.now() > first


# --- refusing: 401 with a Bearer challenge ------------------------------------------------------------------------


def _refused(secret: str, detail: str) -> None:
    response = Client().get("/api/v1/grants/", **_bearer(secret))
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json() == {"detail": detail}


def test_a_revoked_token_is_refused(alice):
    client = _as(alice)
    secret = _create_on_page(client)
    token = ApiToken.objects.get()
    assert Client().get("/api/v1/grants/", **_bearer(secret)).status_code == 200

    revoked = client.post(f"/tokens/{token.pk}/revoke/")
    assert revoked.status_code == 302 and revoked["Location"] == "/tokens/"
    _refused(secret, "This token was revoked.")
    listing = _page(client)
    assert ">Revoked<" in listing and f"/tokens/{token.pk}/revoke/" not in listing


def test_an_expired_token_is_refused(alice):
    _, secret = services.api_token_create(user=alice, name="laptop", expires_in=timedelta(days=7))
    with time_machine.travel(timezone.now() + timedelta(days=7, seconds=1)):
        _refused(secret, "This token has expired.")


def test_unknown_and_malformed_tokens_are_refused_and_no_token_keeps_the_old_answer(alice):
    token, secret = services.api_token_create(user=alice, name="laptop")
    _refused("porte_abcdefgh_" + "A" * 40, "Porte does not know this token.")
    other_prefix = "zzzzzzzz" if token.prefix != "zzzzzzzz" else "yyyyyyyy"
    _refused(f"porte_{other_prefix}_{_secret_part(secret)}", "Porte does not know this token.")
    _refused("not-a-porte-token", "Porte does not know this token.")
    _refused(f"{secret} extra", "Send the token as `Authorization: Bearer porte_…`.")
    # Without any credentials the API answers as it always has (403, no challenge), for browsers without a session.
    anonymous = Client().get("/api/v1/grants/")
    assert anonymous.status_code == 403 and "WWW-Authenticate" not in anonymous


def test_a_token_ends_when_its_owner_is_signed_out_everywhere(alice, acme, staff):
    """Suspending a partner ends every session of its people; their tokens end with them, and stay ended after
    the partner is reactivated (they sign in again and create new ones)."""
    client = _as(alice)
    secret = _create_on_page(client)
    revocation.partner_suspend(partner=acme.partner, reason="Security review", actor=staff)
    _refused(secret, "This token ended when its owner was signed out everywhere.")
    assert ApiToken.objects.get().state(timezone.now()) == ApiToken.State.ENDED


def test_a_token_of_a_deactivated_user_is_refused(alice):
    _, secret = services.api_token_create(user=alice, name="laptop")
    User.objects.filter(pk=alice.pk).update(is_active=False)
    _refused(secret, "Your Porte account is disabled. Contact your organisation's Porte administrator.")


# --- managing: session-only pages, own tokens only ----------------------------------------------------------------


def test_a_token_cannot_reach_the_token_pages(alice):
    """A stolen token cannot mint more tokens or revoke its owner's: the pages know sessions only."""
    token, secret = services.api_token_create(user=alice, name="laptop")
    bearer_only = Client()
    for method, url in [("get", "/tokens/"), ("post", "/tokens/"), ("post", f"/tokens/{token.pk}/revoke/")]:
        response = getattr(bearer_only, method)(url, {"name": "more", "lifetime_days": 90}, **_bearer(secret))
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith("/sign-in/?next=")
    assert list(ApiToken.objects.values_list("name", "revoked_at")) == [("laptop", None)]


def test_revoking_needs_post_and_the_csrf_token(alice):
    token, _ = services.api_token_create(user=alice, name="laptop")
    assert _as(alice).get(f"/tokens/{token.pk}/revoke/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    sign_in_as(strict, alice)
    assert strict.post(f"/tokens/{token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.get().revoked_at is None


def test_nobody_else_sees_or_revokes_a_token(alice, mallory, staff):
    token, secret = services.api_token_create(user=alice, name="alice laptop")
    missing_id = token.pk + 1000
    for intruder in (mallory, staff):
        client = _as(intruder)
        assert client.post(f"/tokens/{token.pk}/revoke/").status_code == 404
        # Same answer as for a token that does not exist.
        assert client.post(f"/tokens/{missing_id}/revoke/").status_code == 404
        assert "alice laptop" not in _page(client) and token.prefix not in _page(client)
    assert ApiToken.objects.get().revoked_at is None
    assert Client().get("/api/v1/grants/", **_bearer(secret)).status_code == 200


# --- auditing ----------------------------------------------------------------------------------------------------


def test_creation_and_revocation_are_audited_without_the_secret(alice, acme):
    client = _as(alice)
    secret = _create_on_page(client, name="ci runner")
    token = ApiToken.objects.get()
    client.post(f"/tokens/{token.pk}/revoke/")
    client.post(f"/tokens/{token.pk}/revoke/")  # already revoked: nothing more to record

    events = list(AuditEvent.objects.filter(object_type="portal.apitoken", object_id=str(token.pk)))
    assert [e.action for e in events] == ["api_token.created", "api_token.revoked"]
    assert all(e.actor == alice and e.partner_id == acme.partner.pk for e in events)
    assert events[0].data == {
        "name": "ci runner",
        "prefix": token.prefix,
        "expires_at": token.expires_at.isoformat(),
    }
    assert events[1].data == {"name": "ci runner", "prefix": token.prefix}
    everything = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert _secret_part(secret) not in everything and token.key_hash not in everything
    assert_audit_chain_whole()
