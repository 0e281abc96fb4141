"""Tenancy: a partner user can reach nothing of another partner, and within a partner only what their place
allows. A foreign grant answers 404 exactly like a missing one, so its existence does not leak.

Personas: Alice (Acme engineer) holds an active grant on Acme's `readonly` role; Mallory (Globex engineer) is
the outsider; Bob is another Acme engineer; Pat is Acme's partner admin.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from approvals.services import request_create
from grants.models import AccessRequest, CredentialIssue, Grant, Role
from grants.services import activation, role_setup
from portal.models import User
from tests.fixtures.domain import READ_ONLY, make_member, sign_in_as

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


@pytest.fixture
def alice_grant(acme, alice) -> Grant:
    request = request_create(
        requester=alice, role=acme.role, justification="Inventory TICKET-42", duration=timedelta(minutes=30)
    )
    grant = activation.grant_activate(grant_id=request.grant.pk)  # as the worker would, against moto
    assert grant.status == Grant.Status.ACTIVE
    return grant


@pytest.fixture
def acme_only_role(acme) -> Role:
    """An Acme role with a slug no Globex role has, open to `engineers` (a group Mallory is in too): only
    tenancy stands between her and it."""
    return role_setup.role_create(
        partner=acme.partner,
        slug="acme-billing",
        name="Acme billing",
        inline_policy=READ_ONLY,
        permissions_boundary_arn=acme.role.permissions_boundary_arn,
        max_duration=timedelta(hours=1),
        eligible_groups=["engineers"],
    )


def _as(user: User | None) -> Client:
    client = Client()
    if user is not None:
        sign_in_as(client, user)
    return client


def _grant_urls(grant_id: int) -> list[tuple[str, str]]:
    return [
        ("get", f"/grants/{grant_id}/"),
        ("post", f"/grants/{grant_id}/console/"),
        ("post", f"/grants/{grant_id}/cli/"),
        ("get", f"/api/v1/grants/{grant_id}/"),
        ("post", f"/api/v1/grants/{grant_id}/credentials/"),
    ]


def test_outsider_gets_404_for_every_url_of_a_foreign_grant(alice_grant, mallory):
    client = _as(mallory)
    missing_id = Grant.objects.order_by("-pk").first().pk + 1000
    for method, url in _grant_urls(alice_grant.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (method, url, response.status_code)
        # Same answer as for a grant that does not exist at all.
        missing = getattr(client, method)(url.replace(f"/{alice_grant.pk}/", f"/{missing_id}/"))
        assert missing.status_code == 404
        assert "Acme" not in response.content.decode()
    assert not CredentialIssue.objects.exists()


def test_outsider_lists_show_nothing_of_the_other_partner(alice_grant, mallory, acme_only_role, globex):
    client = _as(mallory)
    grants = client.get("/api/v1/grants/")
    assert grants.status_code == 200
    assert alice_grant.pk not in [g["id"] for g in grants.json()]
    assert all(g["partner"] == "globex" for g in grants.json())

    roles = client.get("/api/v1/roles/")
    assert roles.status_code == 200
    assert roles.json() == [
        {
            "slug": "readonly",
            "name": "Read-only",
            "description": "",
            "partner": "globex",
            "max_duration_minutes": 120,
        }
    ]

    dashboard = client.get("/")
    assert dashboard.status_code == 200
    page = dashboard.content.decode()
    assert "Acme" not in page and f"#{alice_grant.pk}<" not in page


def test_outsider_cannot_request_another_partners_role(acme_only_role, mallory):
    before = (AccessRequest.objects.count(), Grant.objects.count())
    api = _as(mallory).post(
        "/api/v1/access-requests/",
        {"role": "acme-billing", "duration_minutes": 30, "justification": "Let me in, I am an engineer"},
        content_type="application/json",
    )
    assert api.status_code == 400
    assert api.json() == {"role": ["You are not eligible for a role with this slug."]}

    form = _as(mallory).post(
        "/requests/new/",
        {"role": acme_only_role.pk, "duration_minutes": 30, "justification": "Let me in, I am an engineer"},
    )
    assert form.status_code == 400
    assert "Select a valid choice." in form.content.decode()
    assert (AccessRequest.objects.count(), Grant.objects.count()) == before


def test_anonymous_is_sent_to_sign_in_or_refused(alice_grant):
    """Pages redirect to the partner sign-in; the API answers 403 (session authentication has no challenge)."""
    client = _as(None)
    for method, url in _grant_urls(alice_grant.pk):
        response = getattr(client, method)(url)
        if url.startswith("/api/"):
            assert response.status_code == 403, url
            assert response.json() == {"detail": "Authentication credentials were not provided."}
        else:
            assert response.status_code == 302, url
            assert response["Location"] == f"/sign-in/?next={url}"
    for url in ("/api/v1/grants/", "/api/v1/roles/", "/api/v1/access-requests/"):
        method = client.post if url.endswith("access-requests/") else client.get
        assert method(url).status_code == 403
    assert client.get("/")["Location"] == "/sign-in/?next=/"
    assert not CredentialIssue.objects.exists()


def test_colleague_in_the_same_partner_cannot_see_or_mint_anothers_grant(alice_grant, acme):
    bob = make_member(acme.partner, "bob")
    client = _as(bob)
    for method, url in _grant_urls(alice_grant.pk):
        assert getattr(client, method)(url).status_code == 404, url
    assert alice_grant.pk not in [g["id"] for g in client.get("/api/v1/grants/").json()]
    assert not CredentialIssue.objects.exists()


def test_partner_admin_can_view_but_not_mint_a_colleagues_grant(alice_grant, acme, alice):
    pat = make_member(acme.partner, "pat", partner_admin=True)
    client = _as(pat)

    page = client.get(f"/grants/{alice_grant.pk}/")
    assert page.status_code == 200
    assert "Inventory TICKET-42" in page.content.decode()
    # Only the holder is offered the buttons.
    assert "Open AWS console" not in page.content.decode()
    api = client.get(f"/api/v1/grants/{alice_grant.pk}/")
    assert api.status_code == 200 and api.json()["user"] == str(alice.public_id)
    assert alice_grant.pk in [g["id"] for g in client.get("/api/v1/grants/").json()]

    minted = client.post(f"/api/v1/grants/{alice_grant.pk}/credentials/")
    assert minted.status_code == 409
    assert minted.json() == {"detail": "No such grant."}
    for kind in ("console", "cli"):
        response = client.post(f"/grants/{alice_grant.pk}/{kind}/")
        assert response.status_code == 302 and response["Location"] == f"/grants/{alice_grant.pk}/"
        assert "No such grant." in client.get(response["Location"]).content.decode()
    assert not CredentialIssue.objects.exists()

    # The holder herself can: the refusal above is about the person, not the grant.
    own = _as(alice).post(f"/api/v1/grants/{alice_grant.pk}/credentials/")
    assert own.status_code == 200, own.content
    assert CredentialIssue.objects.get().grant == alice_grant


def test_partner_admin_of_another_partner_sees_nothing(alice_grant, globex):
    hank = make_member(globex.partner, "hank", partner_admin=True)
    client = _as(hank)
    for method, url in _grant_urls(alice_grant.pk):
        assert getattr(client, method)(url).status_code == 404, url
    assert alice_grant.pk not in [g["id"] for g in client.get("/api/v1/grants/").json()]


def test_staff_can_view_any_grant_but_never_mint_for_its_holder(alice_grant, staff):
    """Porte staff oversee every partner's grants; credentials are only ever minted for the person holding the
    grant (SourceIdentity names them), so staff cannot mint on Alice's behalf either."""
    client = _as(staff)
    assert client.get(f"/grants/{alice_grant.pk}/").status_code == 200
    assert client.get(f"/api/v1/grants/{alice_grant.pk}/").json()["partner"] == "acme"
    minted = client.post(f"/api/v1/grants/{alice_grant.pk}/credentials/")
    assert minted.status_code == 409 and minted.json() == {"detail": "No such grant."}
    assert not CredentialIssue.objects.exists()
