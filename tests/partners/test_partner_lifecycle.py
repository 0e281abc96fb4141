"""Suspending and offboarding a partner from the staff console, with a person really signed in (oidc-provider) and
holding an active grant on a role provisioned in moto: their session ends at their next request, they cannot sign
in again, and their grant is revoked with a deny on the role; offboarding also closes memberships and removes the
IdP (its secret destroyed), while grants and the audit history stay.

What moto can prove here is the deny document Porte writes on the role (SourceIdentity + TokenIssueTime); it does
not evaluate IAM conditions, so it cannot show the deny taking effect on a session.
The worker's part (`role_finish_endings`, queued on commit) is called directly: no worker runs in these tests, and
the queued messages are purged afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from allauth.socialaccount.models import SocialAccount
from django.test import Client

from grants.models import Grant
from grants.services import activation, expiry
from partners.models import IdentityProvider, Membership, Partner
from portal.models import AuditEvent, User
from tests.fixtures.domain import World, build_partner, make_staff, sign_in_as
from tests.fixtures.peers import ALICE
from tests.helpers import (
    assert_audit_chain_whole,
    begin_oidc_sign_in,
    csrf_headers,
    denied_identities,
    purge_broker,
    refusals,
    role_inline_policy,
    session_user_id,
)
from tests.peers.oidc_idp import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

NOT_ACTIVE = "Your organisation&#x27;s access to Porte is not active. Contact your Porte sponsor."


@pytest.fixture
def signed_in(live_server, settings, acme_idp, local_aws) -> Iterator[tuple[World, requests.Session, Grant]]:  # type: ignore[no-untyped-def]
    """Acme (provisioned in moto) with Alice signed in through her IdP and holding an active read-only grant."""
    settings.PUBLIC_URL = live_server.url
    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret")
    http = requests.Session()
    landed = sign_in(http, begin_oidc_sign_in(http, live_server.url, "acme"), ALICE.username, ALICE.password)
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    created = http.post(
        f"{live_server.url}/api/v1/access-requests/",
        headers=csrf_headers(http),
        json={"role": "readonly", "justification": "Inventory check for TICKET-42", "duration_minutes": 60},
    )
    assert created.status_code == 201, created.text
    grant = activation.grant_activate(grant_id=created.json()["id"])
    assert grant.status == Grant.Status.ACTIVE
    yield world, http, grant
    http.close()  # its keep-alive connection would hold a live-server thread and its database connection
    purge_broker()


@pytest.fixture
def console(db) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    sign_in_as(client, make_staff("sam"))
    return client


def _messages(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def _alice_is_signed_out(live_server, http: requests.Session) -> None:  # type: ignore[no-untyped-def]
    home = http.get(f"{live_server.url}/", allow_redirects=False)
    assert home.status_code == 302 and home.headers["Location"] == "/sign-in/?next=/"
    assert http.get(f"{live_server.url}/api/v1/grants/").status_code == 403
    assert session_user_id(http) is None


def _revocation_deny(world: World) -> list[tuple[str, str]]:
    return denied_identities(
        role_inline_policy(world.partner.aws_account_id, world.role.iam_name, "porte-revocations")
    )


def test_suspending_needs_a_reason_and_changes_nothing_without_one(live_server, signed_in, console):
    _, http, grant = signed_in

    for data in ({}, {"reason": ""}, {"reason": "   "}):
        response = console.post("/staff/partners/acme/suspend/", data)
        assert response.status_code == 400
        assert "Give a reason: it is recorded in the audit log." in response.content.decode()

    assert Partner.objects.get().status == Partner.Status.ACTIVE
    assert Grant.objects.get().status == Grant.Status.ACTIVE
    assert not AuditEvent.objects.filter(action__in=["partner.suspended", "grant.revoke_requested"]).exists()
    assert http.get(f"{live_server.url}/", allow_redirects=False).status_code == 200
    assert session_user_id(http) == str(grant.user_id)


def test_suspending_a_partner_signs_its_people_out_refuses_them_and_revokes_their_grants(
    live_server, signed_in, console
):
    world, http, grant = signed_in
    alice = grant.user

    response = console.post(
        "/staff/partners/acme/suspend/", {"reason": "Contract paused (LEGAL-7)"}, follow=True
    )

    assert response.redirect_chain == [("/staff/partners/acme/", 302)]
    assert "Acme Corp suspended: sign-ins refused, sessions ended, open grants revoked." in _messages(
        response
    )
    assert Partner.objects.get().status == Partner.Status.SUSPENDED
    suspended = AuditEvent.objects.get(action="partner.suspended")
    assert suspended.actor.username == "sam"
    assert suspended.data == {
        "from": "active",
        "reason": "Contract paused (LEGAL-7)",
        "sessions_ended_for": 1,
    }

    # Her next request: her session is over.
    _alice_is_signed_out(live_server, http)

    # Her grant: claimed for revocation at once, ended once the deny is on the role.
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKING and grant.deny_cutoff is not None
    assert expiry.role_finish_endings(role_id=world.role.pk) == 1
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED and grant.ended_at is not None
    assert _revocation_deny(world) == [
        (alice.source_identity, grant.deny_cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ]
    assert list(
        AuditEvent.objects.filter(object_type="grants.grant", object_id=str(grant.pk)).values_list(
            "action", flat=True
        )
    ) == ["grant.created", "grant.activated", "grant.revoke_requested", "grant.revoked"]
    assert AuditEvent.objects.get(action="grant.revoke_requested").data == {
        "reason": "partner suspended: Contract paused (LEGAL-7)"
    }

    # Signing in again: her IdP still vouches for her, Porte refuses her.
    again = requests.Session()
    refused = sign_in(
        again, begin_oidc_sign_in(again, live_server.url, "acme"), ALICE.username, ALICE.password
    )
    assert refused.status_code == 403 and NOT_ACTIVE in refused.text
    assert refusals() == [
        {
            "partner_id": world.partner.pk,
            "provider_id": "acme",
            "reason": "partner_inactive",
            "subject": ALICE.sub,
        }
    ]
    assert session_user_id(again) is None
    assert User.objects.filter(is_staff=False).count() == 1 and SocialAccount.objects.count() == 1
    # Suspension is reversible: her membership and identity stay.
    assert Membership.objects.get().is_active and IdentityProvider.objects.get().is_enabled


def test_offboarding_closes_memberships_and_removes_the_idp_but_keeps_history(
    live_server, signed_in, console
):
    world, http, grant = signed_in
    alice = grant.user
    in_flight = requests.Session()
    to_idp = begin_oidc_sign_in(in_flight, live_server.url, "acme")  # a sign-in started before offboarding

    response = console.post("/staff/partners/acme/offboard/", {"reason": "Contract ended"}, follow=True)

    assert "Acme Corp offboarded: sign-ins refused, sessions ended, open grants revoked." in _messages(
        response
    )
    assert Partner.objects.get().status == Partner.Status.OFFBOARDED
    assert list(Membership.objects.values_list("is_active", flat=True)) == [False]
    idp = IdentityProvider.objects.get()
    assert not idp.is_enabled and idp.client_secret_encrypted == ""
    _alice_is_signed_out(live_server, http)
    assert expiry.role_finish_endings(role_id=world.role.pk) == 1
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    assert _revocation_deny(world) == [
        (alice.source_identity, grant.deny_cutoff.strftime("%Y-%m-%dT%H:%M:%SZ"))
    ]

    # Nobody signs in through the removed IdP: the login link is gone, an in-flight sign-in finds no IdP.
    assert (
        requests.get(f"{live_server.url}/accounts/oidc/acme/login/", allow_redirects=False).status_code == 404
    )
    callback = sign_in(in_flight, to_idp, ALICE.username, ALICE.password)
    assert callback.status_code == 404 and session_user_id(in_flight) is None

    # History stays: the person, their identity, the request and grant, the whole audit chain.
    assert User.objects.filter(pk=alice.pk).exists() and SocialAccount.objects.filter(user=alice).exists()
    assert Grant.objects.filter(pk=grant.pk, request__justification="Inventory check for TICKET-42").exists()
    assert {
        "partner.created",
        "membership.created",
        "grant.activated",
        "grant.revoked",
        "partner.offboarded",
    } <= set(AuditEvent.objects.values_list("action", flat=True))
    assert_audit_chain_whole()

    # Offboarding is final.
    page = console.get("/staff/partners/acme/").content.decode()
    assert "OpenID Connect — removed" in page and "<strong>missing</strong>" in page
    assert "Suspend or offboard" not in page
    last_event = AuditEvent.objects.latest("pk").pk
    console.post("/staff/partners/acme/activate/")
    console.post("/staff/partners/acme/suspend/", {"reason": "oops"})
    assert Partner.objects.get().status == Partner.Status.OFFBOARDED
    assert not AuditEvent.objects.filter(pk__gt=last_event).exists()
