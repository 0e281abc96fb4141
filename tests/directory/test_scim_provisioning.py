"""A partner's directory provisions and deprovisions its people over SCIM: identity stays (IdP, subject), a
deactivation ends the person's place, sessions, tokens and open grants, groups decide eligibility, and one
partner's token never reaches another partner's people."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.socialaccount.models import SocialAccount
from django.test import Client

from approvals.services import request_create
from directory import services
from directory.models import DirectoryConnection
from grants.models import Grant
from grants.services.revocation import membership_revoke
from partners import services as partner_services
from partners.models import Membership
from portal.models import ApiToken, AuditEvent, User
from portal.services import api_token_create
from tests.directory.scim import Directory, scim_error
from tests.fixtures.domain import World, make_member, sign_in_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory(acme: World, staff: User) -> Directory:
    return Directory(acme.partner, staff)


def _membership(resource: dict) -> Membership:
    return Membership.objects.select_related("user").get(scim_id=resource["id"])


# --- the token -----------------------------------------------------------------------------------------------


def test_only_the_token_digest_is_kept_and_rotation_stops_the_old_one(acme: World, staff: User) -> None:
    first = Directory(acme.partner, staff)
    connection = DirectoryConnection.objects.get(partner=acme.partner)
    secret = first.token.rsplit("_", 1)[1]
    assert secret not in connection.token_hash and len(connection.token_hash) == 64
    assert first.get("Users").status_code == 200

    second = Directory(acme.partner, staff)
    scim_error(first.get("Users"), 401)
    assert second.get("Users").status_code == 200
    actions = list(
        AuditEvent.objects.filter(action="directory.token_created").values_list("data__replaced", flat=True)
    )
    assert actions == [None, first.token.split("_")[2]]
    assert not AuditEvent.objects.filter(data__icontains=secret).exists()

    services.directory_turn_off(partner=acme.partner, actor=staff, reason="test")
    scim_error(second.get("Users"), 401)


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer porte_scim_", "Basic dXNlcjpwYXNz", "Bearer porte_abcdefgh_" + "A" * 40],
)
def test_anything_but_the_partner_token_is_refused(directory: Directory, header: str) -> None:
    response = Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=header)
    scim_error(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_signed_in_person_or_their_api_token_is_not_a_directory(acme: World, alice: User) -> None:
    _token, personal = api_token_create(user=alice, name="laptop")
    scim_error(Client().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Bearer {personal}"), 401)
    scim_error(sign_in_as(Client(), alice).get("/scim/v2/Users"), 401)


def test_the_staff_page_makes_the_token_once_and_can_turn_it_off(acme: World, staff: User) -> None:
    browser = sign_in_as(Client(), staff)
    page = browser.post(f"/staff/partners/{acme.partner.slug}/directory/token/")
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    token = page.context["token"]
    assert token.startswith("porte_scim_") and token in page.content.decode()
    assert "/scim/v2/" in page.content.decode()
    assert Directory(acme.partner, staff, token=token).get("Users").status_code == 200
    detail = browser.get(f"/staff/partners/{acme.partner.slug}/").content.decode()
    assert token not in detail and token.split("_")[2] in detail

    browser.post(f"/staff/partners/{acme.partner.slug}/directory/off/")
    scim_error(Directory(acme.partner, staff, token=token).get("Users"), 401)


# --- people --------------------------------------------------------------------------------------------------


def test_a_provisioned_person_is_the_identity_their_idp_will_sign_in(directory: Directory) -> None:
    bob = directory.create_user(
        "acme-0042",
        "bob@acme.example",
        name={"givenName": "Bob", "familyName": "Stone"},
        emails=[{"value": "bob@acme.example", "primary": True}],
    )
    membership = _membership(bob)
    assert membership.partner == directory.partner and membership.is_active
    assert SocialAccount.objects.get(user=membership.user).uid == "acme-0042"
    assert SocialAccount.objects.get(user=membership.user).provider == "acme"
    assert membership.user.get_full_name() == "Bob Stone" and not membership.user.has_usable_password()
    assert bob["userName"] == "bob@acme.example" and bob["externalId"] == "acme-0042"
    assert directory.get(f"Users/{bob['id']}").json() == bob
    found = directory.get('Users?filter=userName eq "BOB@ACME.EXAMPLE"').json()
    assert [r["id"] for r in found["Resources"]] == [bob["id"]] and found["totalResults"] == 1


def test_someone_who_signed_in_before_is_adopted_not_duplicated(directory: Directory, acme: World) -> None:
    alice = make_member(acme.partner, "acme.acme-0001")
    User.objects.filter(pk=alice.pk).update(first_name="Alice", last_name="Martin")
    SocialAccount.objects.create(user=alice, provider="acme", uid="acme-0001")
    resource = directory.create_user("acme-0001", "alice@acme.example")
    assert _membership(resource).user == alice
    # What the directory did not say is kept from her sign-ins.
    assert resource["name"] == {"givenName": "Alice", "familyName": "Martin"}
    assert resource["emails"] == [{"value": "acme.acme-0001@acme.example"}]
    assert User.objects.filter(membership__partner=acme.partner).count() == 1
    assert AuditEvent.objects.get(action="membership.provisioned").data["adopted"] is True


def test_names_and_subjects_are_unique_and_the_subject_never_changes(directory: Directory) -> None:
    bob = directory.create_user("acme-0042", "bob@acme.example")
    body = {"externalId": "acme-0043", "userName": "Bob@Acme.example"}
    assert scim_error(directory.send("post", "Users", body), 409)["scimType"] == "uniqueness"
    body = {"externalId": "acme-0042", "userName": "robert@acme.example"}
    assert scim_error(directory.send("post", "Users", body), 409)["scimType"] == "uniqueness"
    moved = directory.patch(f"Users/{bob['id']}", {"op": "replace", "path": "externalId", "value": "acme-9"})
    assert "cannot change" in scim_error(moved, 400)["detail"]
    assert _membership(bob).scim_external_id == "acme-0042"


def test_deactivation_ends_place_sessions_tokens_and_open_grants(directory: Directory, acme: World) -> None:
    bob = directory.create_user("acme-0042", "bob@acme.example")
    directory.create_group("engineers", [bob["id"]])
    user = _membership(bob).user
    browser = sign_in_as(Client(), user)
    assert browser.get("/").status_code == 200
    _token, personal = api_token_create(user=user, name="laptop")
    grant = request_create(
        requester=user, role=acme.role, justification="Inventory 42", duration=timedelta(minutes=30)
    ).grant
    assert grant is not None and grant.status == Grant.Status.PENDING

    # Microsoft Entra ID's form: a string boolean, the op capitalised.
    answer = directory.patch(f"Users/{bob['id']}", {"op": "Replace", "path": "active", "value": "False"})
    assert answer.status_code == 200 and answer.json()["active"] is False

    membership = _membership(bob)
    assert not membership.is_active and membership.ended_by_directory
    assert browser.get("/").status_code == 302  # the session ended: back to the sign-in page
    assert Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {personal}").status_code == 401
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    ended = AuditEvent.objects.get(action="membership.ended", object_id=str(membership.pk))
    assert ended.data["reason"] == services.DEACTIVATED
    assert ApiToken.objects.get(user=user).state is not None


def test_reactivation_reopens_only_what_the_directory_closed(directory: Directory, acme: World) -> None:
    bob = directory.create_user("acme-0042", "bob@acme.example")
    carol = directory.create_user("acme-0043", "carol@acme.example")
    directory.patch(f"Users/{bob['id']}", {"op": "replace", "value": {"active": False}})
    answer = directory.patch(f"Users/{bob['id']}", {"op": "replace", "value": {"active": True}})
    assert answer.json()["active"] is True and _membership(bob).is_active

    # A review (or staff) ended Carol's place: the directory cannot give it back.
    membership_revoke(membership_id=_membership(carol).pk, reason="access review: revoked")
    answer = directory.patch(f"Users/{carol['id']}", {"op": "replace", "path": "active", "value": True})
    assert answer.status_code == 200 and answer.json()["active"] is False


def test_deleting_a_person_ends_their_place_and_keeps_their_history(directory: Directory) -> None:
    bob = directory.create_user("acme-0042", "bob@acme.example")
    group = directory.create_group("engineers", [bob["id"]])
    membership = _membership(bob)
    assert directory.send("delete", f"Users/{bob['id']}", "").status_code == 204
    scim_error(directory.get(f"Users/{bob['id']}"), 404)
    membership.refresh_from_db()
    assert not membership.is_active and membership.scim_id is None and membership.groups == []
    assert directory.get(f"Groups/{group['id']}").json()["members"] == []
    # The directory names the same subject again: the same person comes back (history intact).
    again = directory.create_user("acme-0042", "bob@acme.example")
    assert _membership(again).pk == membership.pk and _membership(again).is_active


# --- groups --------------------------------------------------------------------------------------------------


def test_groups_come_from_the_directory_and_leaving_one_revokes_what_it_allowed(
    directory: Directory, acme: World
) -> None:
    bob = directory.create_user("acme-0042", "bob@acme.example")
    membership = _membership(bob)
    assert membership.groups == []
    group = directory.create_group("engineers", [bob["id"]])
    assert _membership(bob).groups == ["engineers"]
    idp = acme.partner.identity_providers.get()
    assert idp.groups_from_directory

    # A sign-in no longer replaces them with what the assertion said.
    partner_services.membership_record_sign_in(
        user=membership.user, identity_provider=idp, groups=None, email="bob@acme.example"
    )
    assert _membership(bob).groups == ["engineers"]

    grant = request_create(
        requester=_membership(bob).user,
        role=acme.role,
        justification="Inventory 42",
        duration=timedelta(minutes=30),
    ).grant
    assert grant is not None
    # Okta's form of removing a member: the values to remove.
    answer = directory.patch(
        f"Groups/{group['id']}", {"op": "remove", "path": "members", "value": [{"value": bob["id"]}]}
    )
    assert answer.status_code == 200 and answer.json()["members"] == []
    assert _membership(bob).groups == []
    grant.refresh_from_db()
    assert grant.status == Grant.Status.REVOKED
    changed = AuditEvent.objects.get(action="membership.groups_changed", data__to=[])
    assert changed.data["from"] == ["engineers"]


def test_renaming_a_group_renames_it_for_eligibility(directory: Directory) -> None:
    bob = directory.create_user("acme-0042", "bob@acme.example")
    group = directory.create_group("engineers", [bob["id"]])
    directory.patch(f"Groups/{group['id']}", {"op": "replace", "path": "displayName", "value": "auditors"})
    assert _membership(bob).groups == ["auditors"]
    # Entra ID's form of removing a member: a filter in the path.
    directory.patch(f"Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{bob["id"]}"]'})
    assert _membership(bob).groups == []
    directory.patch(
        f"Groups/{group['id']}", {"op": "add", "path": "members", "value": [{"value": bob["id"]}]}
    )
    assert _membership(bob).groups == ["auditors"]
    assert directory.send("delete", f"Groups/{group['id']}", "").status_code == 204
    assert _membership(bob).groups == []


# --- tenancy -------------------------------------------------------------------------------------------------


def test_a_partner_token_never_reaches_another_partners_people(
    directory: Directory, globex: World, staff: User
) -> None:
    bob = directory.create_user("acme-0042", "bob@acme.example")
    group = directory.create_group("engineers", [bob["id"]])
    other = Directory(globex.partner, staff)
    assert other.get("Users").json()["totalResults"] == 0
    assert other.get("Groups").json()["totalResults"] == 0
    for path in (f"Users/{bob['id']}", f"Groups/{group['id']}"):
        scim_error(other.get(path), 404)
        scim_error(other.patch(path, {"op": "replace", "path": "active", "value": False}), 404)
        scim_error(other.send("put", path, {"userName": "x", "externalId": "x", "displayName": "x"}), 404)
        scim_error(other.send("delete", path, ""), 404)
    # A filter cannot widen the partner: its `or` stays inside the partner's rows.
    widened = other.get(
        f'Users?filter=userName eq "nobody" or externalId eq "acme-0042" or id eq "{bob["id"]}"'
    )
    assert widened.json()["totalResults"] == 0
    # Another partner's person as a member: the same answer as a person who does not exist.
    refused = scim_error(
        other.send("post", "Groups", {"displayName": "x", "members": [{"value": bob["id"]}]}), 400
    )
    missing = "00000000-0000-4000-8000-000000000000"
    alike = scim_error(
        other.send("post", "Groups", {"displayName": "x", "members": [{"value": missing}]}), 400
    )
    assert refused["detail"].replace(bob["id"], "?") == alike["detail"].replace(missing, "?")
    assert _membership(bob).is_active and _membership(bob).groups == ["engineers"]


def test_a_request_waiting_for_approvers_ends_with_the_persons_place(
    directory: Directory, acme: World
) -> None:
    from approvals.models import ApprovalPolicy
    from grants.models import AccessRequest

    ApprovalPolicy.objects.create(role=acme.role, approvals_required=1, approvers="staff")
    bob = directory.create_user("acme-0042", "bob@acme.example")
    directory.create_group("engineers", [bob["id"]])
    waiting = request_create(
        requester=_membership(bob).user,
        role=acme.role,
        justification="Inventory 42",
        duration=timedelta(minutes=30),
    )
    assert waiting.status == AccessRequest.Status.PENDING
    directory.patch(f"Users/{bob['id']}", {"op": "replace", "path": "active", "value": False})
    waiting.refresh_from_db()
    assert waiting.status == AccessRequest.Status.REFUSED
    assert waiting.decision_reason == f"The requester's place ended: {services.DEACTIVATED}"
    assert AuditEvent.objects.get(action="request.refused", object_id=str(waiting.pk)).data["condition"] == (
        "membership_ended"
    )


def test_a_page_of_users_or_groups_costs_the_same_queries_however_many(directory: Directory) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def cost(path: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert directory.get(path).status_code == 200
        return len(queries.captured_queries)

    people = [directory.create_user(f"acme-{n:04d}", f"p{n}@acme.example")["id"] for n in range(2)]
    directory.create_group("engineers", people)
    paths = ("Users", "Groups", 'Users?filter=userName co "@"', 'Groups?filter=displayName ne ""')
    few = [cost(path) for path in paths]
    people += [directory.create_user(f"acme-{n:04d}", f"p{n}@acme.example")["id"] for n in range(2, 12)]
    directory.create_group("auditors", people)
    assert [cost(path) for path in paths] == few
