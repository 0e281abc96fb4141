"""The doors partner people used to get in without their IdP, each shut, and standing ended everywhere at once.

Partner people have no local credentials: allauth's password, e-mail and connection pages do not exist for them,
the password form refuses them like an unknown account, and a reset mail is never sent to them. A person who
loses their standing (partner suspended, membership ended by an access review, IdP disabled) loses it on the
next request of every open session, every API token and every mint, with the session's end audited once.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.utils import timezone

from approvals.services import request_create
from grants.models import CredentialIssue, Grant
from grants.services import activation, minting, revocation
from grants.services.minting import GrantNotUsable
from partners import services as partner_services
from partners.models import Partner
from portal.models import AuditEvent, User
from portal.services import api_token_create
from tests.fixtures.domain import World, make_staff, sign_in_as

pytestmark = pytest.mark.django_db

SAME_REFUSAL = "The username and/or password you specified are not correct."


def _alice_client(alice: User) -> Client:
    return sign_in_as(Client(), alice)


# --- no local credentials -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/accounts/password/set/", {"password1": "N3w-Passw0rd!x", "password2": "N3w-Passw0rd!x"}),
        (
            "/accounts/password/change/",
            {"oldpassword": "x", "password1": "N3w-Passw0rd!x", "password2": "N3w-Passw0rd!x"},
        ),
        ("/accounts/email/", {"action_add": "", "email": "alice.private@mail.example"}),
        ("/accounts/3rdparty/", {}),
        ("/accounts/3rdparty/signup/", {}),
        ("/accounts/reauthenticate/", {"password": "x"}),
    ],
)
def test_local_account_pages_do_not_exist_for_a_partner_person(alice, path, data):
    client = _alice_client(alice)

    assert client.get(path).status_code == 404
    assert client.post(path, data).status_code == 404

    alice.refresh_from_db()
    assert not alice.has_usable_password()
    assert not EmailAddress.objects.filter(email="alice.private@mail.example").exists()
    assert mail.outbox == []


def test_the_connections_page_lists_no_partner_for_anyone_but_staff(alice, globex):
    page = _alice_client(alice).get("/accounts/3rdparty/")
    assert page.status_code == 404 and b"Globex" not in page.content


def test_a_password_reset_for_a_partner_person_sends_nothing_and_answers_like_any_address(alice):
    staff = make_staff("sam", email="sam@porte.example")
    visitor = Client()

    for_alice = visitor.post("/accounts/password/reset/", {"email": alice.email})
    for_nobody = visitor.post("/accounts/password/reset/", {"email": "nobody@acme.example"})
    assert for_alice.status_code == for_nobody.status_code == 302
    assert for_alice["Location"] == for_nobody["Location"]
    assert mail.outbox == []

    # Staff still get theirs: the form works, it just never reaches partner people.
    visitor.post("/accounts/password/reset/", {"email": staff.email})
    assert [m.to for m in mail.outbox] == [[staff.email]]


def test_the_password_form_refuses_a_partner_person_like_an_unknown_account(alice):
    # Even a password left behind by an older Porte (set directly on the row) does not sign them in.
    alice.set_password("Leftover-Passw0rd")
    alice.save(update_fields=["password"])

    partner_try = Client().post("/accounts/login/", {"login": "alice", "password": "Leftover-Passw0rd"})
    unknown_try = Client().post("/accounts/login/", {"login": "nobody", "password": "Leftover-Passw0rd"})

    assert partner_try.status_code == unknown_try.status_code == 400
    assert SAME_REFUSAL in partner_try.content.decode() and SAME_REFUSAL in unknown_try.content.decode()
    assert "_auth_user_id" not in partner_try.client.session


def test_setting_a_password_through_allauth_is_refused_for_partner_people(alice):
    from allauth.account.adapter import get_adapter

    with pytest.raises(Exception, match="identity provider"):
        get_adapter().set_password(alice, "N3w-Passw0rd!x")
    alice.refresh_from_db()
    assert not alice.has_usable_password()


def test_a_partner_session_that_did_not_come_from_its_idp_is_ended(alice):
    """A session signed in any other way (e.g. a password it should never have had) is ended by the gate."""
    client = Client()
    client.force_login(alice)  # no record of an IdP sign-in

    response = client.get("/")

    assert response.status_code == 302 and response["Location"].startswith("/sign-in/")
    assert "_auth_user_id" not in client.session
    ended = AuditEvent.objects.get(action="session.ended")
    assert ended.data["reason"] == "not_signed_in_by_idp"


# --- standing ends everywhere at once -------------------------------------------------------------------------


def _suspend(world: World, alice: User) -> None:
    partner_services.partner_set_status(
        partner=world.partner, status=Partner.Status.SUSPENDED, reason="audit"
    )


def _end_membership(world: World, alice: User) -> None:
    partner_services.membership_end(membership=alice.membership, reason="access review: no longer needed")


def _disable_idp(world: World, alice: User) -> None:
    world.partner.identity_providers.update(is_enabled=False)


def _offboard(world: World, alice: User) -> None:
    partner_services.partner_set_status(
        partner=world.partner, status=Partner.Status.OFFBOARDED, reason="ended"
    )


def _deactivate(world: World, alice: User) -> None:
    User.objects.filter(pk=alice.pk).update(is_active=False)


# (how standing is lost, the reason the gate records, the event of a service that ends the sessions there and then)
LOSSES = {
    "partner suspended": (_suspend, "partner_inactive", "partner.suspended"),
    "membership ended by a review": (_end_membership, "membership_ended", "membership.ended"),
    "partner offboarded": (_offboard, "partner_inactive", "partner.offboarded"),
    "IdP disabled": (_disable_idp, "idp_disabled", None),
    "account disabled": (_deactivate, "user_inactive", None),
}


@pytest.fixture
def alice_grant(acme, alice) -> Grant:
    request = request_create(
        requester=alice,
        role=acme.role,
        justification="Standing check TICKET-9",
        duration=timedelta(minutes=30),
    )
    return activation.grant_activate(grant_id=request.grant.pk)


@pytest.mark.aws
@pytest.mark.parametrize("loss", list(LOSSES))
def test_losing_standing_ends_open_sessions_tokens_and_minting(acme, alice, alice_grant, loss):
    browser, other_browser = _alice_client(alice), _alice_client(alice)
    _, secret = api_token_create(user=alice, name="laptop")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert browser.get("/").status_code == 200
    assert Client().get("/api/v1/grants/", **bearer).status_code == 200

    lose, reason, ended_at_once_by = LOSSES[loss]
    lose(acme, alice)

    # The next request of each open session ends it, whatever the page; the end is audited once per session.
    for client in (browser, other_browser):
        first = client.get("/activity/")
        assert first.status_code == 302 and first["Location"].startswith("/sign-in/")
        assert "_auth_user_id" not in client.session
        assert client.get("/api/v1/grants/").status_code in (401, 403)
    ended = AuditEvent.objects.filter(action="session.ended")
    if ended_at_once_by:
        # The service ended every session there and then, in the event that records the change: the gate finds
        # nothing left to end.
        assert AuditEvent.objects.filter(action=ended_at_once_by).count() == 1 and not ended.exists()
    else:
        assert ended.count() == 2 and {e.data["reason"] for e in ended} == {reason}

    # Tokens answer 401 with the reason in words; minting is refused in the service itself.
    refused = Client().get("/api/v1/grants/", **bearer)
    assert refused.status_code == 401 and refused.json()["detail"]
    minted = Client().post(f"/api/v1/grants/{alice_grant.pk}/credentials/", **bearer)
    assert minted.status_code == 401
    with pytest.raises(GrantNotUsable):
        minting.credential_mint(
            grant_id=alice_grant.pk, user=User.objects.get(pk=alice.pk), kind=CredentialIssue.Kind.CLI
        )
    assert not CredentialIssue.objects.filter(grant=alice_grant).exists()


def test_a_partner_person_never_reaches_a_token_page_without_standing(acme, alice):
    _suspend(acme, alice)
    client = _alice_client(alice)
    response = client.post("/tokens/", {"name": "sneaky", "lifetime_days": "7"})
    assert response.status_code == 302 and response["Location"].startswith("/sign-in/")
    assert not alice.api_tokens.exists()


# --- credentials are never dead on arrival --------------------------------------------------------------------


@pytest.mark.aws
def test_a_session_minted_right_after_a_revocation_starts_after_its_cutoff(acme, alice, alice_grant):
    """Revoke, then grant again within the same second: the deny written for the revoked grant names every session
    issued before its cutoff (rounded up to the second), so the new session must be issued after it."""
    revocation.grant_revoke(grant=alice_grant, reason="wrong ticket", actor=alice)
    revoked = Grant.objects.get(pk=alice_grant.pk)
    assert revoked.deny_cutoff is not None and revoked.deny_cutoff > timezone.now() - timedelta(seconds=1)

    again = request_create(
        requester=alice,
        role=acme.role,
        justification="Right ticket TICKET-10",
        duration=timedelta(minutes=30),
    )
    grant = activation.grant_activate(grant_id=again.grant.pk)
    minted = minting.credential_mint(grant_id=grant.pk, user=alice, kind=CredentialIssue.Kind.CLI)

    assert minted.issue.issued_at > revoked.deny_cutoff
