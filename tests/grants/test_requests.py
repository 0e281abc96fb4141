"""Bad access requests are refused with a message naming what is wrong, by the page and by the API alike, and
leave no trace: no AccessRequest, no Grant, no audit event. A second request overlapping a current grant is
refused and leaves the first grant exactly as it was.

Persona: Alice (Acme, group `engineers`) is eligible for Acme's `readonly` role (max 2 h) only.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from approvals.services import request_create
from grants.models import AccessRequest, Grant, Role
from grants.services import activation, role_setup
from portal.models import AuditEvent
from tests.fixtures.domain import READ_ONLY, make_member, sign_in_as

pytestmark = pytest.mark.django_db

API = "/api/v1/access-requests/"
FORM = "/requests/new/"
GOOD_REASON = "Inventory check for TICKET-42"


@pytest.fixture
def admin_role(acme) -> Role:
    """A second Acme role, for the `admins` group that Alice is not in."""
    return role_setup.role_create(
        partner=acme.partner,
        slug="admin",
        name="Administrator",
        inline_policy=READ_ONLY,
        permissions_boundary_arn=acme.role.permissions_boundary_arn,
        max_duration=timedelta(hours=1),
        eligible_groups=["admins"],
    )


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    sign_in_as(client, user)
    return client


def _counts() -> tuple[int, int, int]:
    return AccessRequest.objects.count(), Grant.objects.count(), AuditEvent.objects.count()


# --- the HTML form ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "justification", "message"),
    [
        (121, GOOD_REASON, "Read-only can be granted for at most 120 minutes."),
        (14, GOOD_REASON, "The shortest access is 15 minutes."),
        (0, GOOD_REASON, "The shortest access is 15 minutes."),
        (30, "", "This field is required."),
        (30, "   too short   ", "Say why you need this access (at least 10 characters)."),
    ],
    ids=["over-role-max", "under-15-min", "zero", "no-justification", "short-justification"],
)
def test_form_refuses_bad_input_and_shows_why(acme, alice, minutes, justification, message):
    before = _counts()
    response = _client(alice).post(
        FORM, {"role": acme.role.pk, "duration_minutes": minutes, "justification": justification}
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    # The form comes back with what was typed, so the person can correct it.
    assert response.context["form"].data["justification"] == justification
    assert _counts() == before


def test_form_refuses_a_role_the_user_is_not_eligible_for(acme, alice, admin_role):
    before = _counts()
    response = _client(alice).post(
        FORM, {"role": admin_role.pk, "duration_minutes": 30, "justification": GOOD_REASON}
    )
    assert response.status_code == 400
    assert (
        "Select a valid choice. That choice is not one of the available choices." in response.content.decode()
    )
    assert _counts() == before


def test_form_refuses_a_user_outside_every_eligible_group(acme):
    """Without the group there is no role to offer: the page says so instead of showing the form."""
    outsider = make_member(acme.partner, "oscar", groups=())
    before = _counts()
    response = _client(outsider).post(
        FORM, {"role": acme.role.pk, "duration_minutes": 30, "justification": GOOD_REASON}
    )
    assert response.status_code == 400
    assert "You are not eligible for any role yet." in response.content.decode()
    assert _counts() == before


# --- the API ---------------------------------------------------------------------------------------------------


def _api(user, body: dict[str, object]):  # type: ignore[no-untyped-def]
    return _client(user).post(API, body, content_type="application/json")


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {"role": "readonly", "duration_minutes": 121, "justification": GOOD_REASON},
            {"duration_minutes": ["Read-only can be granted for at most 120 minutes."]},
        ),
        (
            {"role": "readonly", "duration_minutes": 14, "justification": GOOD_REASON},
            {"duration_minutes": ["The shortest access is 15 minutes."]},
        ),
        (
            {"role": "readonly", "duration_minutes": 0, "justification": GOOD_REASON},
            {"duration_minutes": ["The shortest access is 15 minutes."]},
        ),
        ({"role": "readonly", "duration_minutes": 30}, {"justification": ["This field is required."]}),
        (
            {"role": "readonly", "duration_minutes": 30, "justification": " too short "},
            {"justification": ["Say why you need this access (at least 10 characters)."]},
        ),
        (
            {"role": "admin", "duration_minutes": 30, "justification": GOOD_REASON},
            {"role": ["You are not eligible for a role with this slug."]},
        ),
        (
            {"role": "no-such-role", "duration_minutes": 30, "justification": GOOD_REASON},
            {"role": ["You are not eligible for a role with this slug."]},
        ),
    ],
    ids=[
        "over-role-max",
        "under-15-min",
        "zero",
        "no-justification",
        "short-justification",
        "not-eligible",
        "unknown-role",
    ],
)
def test_api_refuses_bad_input_naming_the_field(acme, alice, admin_role, body, errors):
    before = _counts()
    response = _api(alice, body)
    assert response.status_code == 400
    assert response.json() == errors
    assert _counts() == before


def test_api_refuses_a_user_outside_every_eligible_group(acme):
    outsider = make_member(acme.partner, "oscar", groups=())
    before = _counts()
    response = _api(outsider, {"role": "readonly", "duration_minutes": 30, "justification": GOOD_REASON})
    assert response.status_code == 400
    assert response.json() == {"role": ["You are not eligible for a role with this slug."]}
    assert _counts() == before


def test_service_reports_every_problem_at_once(acme, alice):
    """The service is the last line (tasks and admin call it too): it refuses without writing anything."""
    from django.core.exceptions import ValidationError

    before = _counts()
    with pytest.raises(ValidationError) as refused:
        request_create(requester=alice, role=acme.role, justification="short", duration=timedelta(hours=3))
    assert refused.value.message_dict == {
        "justification": ["Say why you need this access (at least 10 characters)."],
        "duration": ["Read-only can be granted for at most 120 minutes."],
    }
    assert _counts() == before


# --- overlapping requests --------------------------------------------------------------------------------------


def _snapshot(grant: Grant) -> dict[str, object]:
    grant.refresh_from_db()
    return {f.attname: getattr(grant, f.attname) for f in Grant._meta.concrete_fields}


@pytest.mark.aws
def test_second_overlapping_request_is_refused_and_the_first_grant_is_untouched(acme, alice):
    first = _api(alice, {"role": "readonly", "duration_minutes": 30, "justification": GOOD_REASON})
    assert first.status_code == 201, first.content
    grant = activation.grant_activate(grant_id=first.json()["id"])  # what the worker would do (moto)
    assert grant.status == Grant.Status.ACTIVE
    snapshot = _snapshot(grant)
    before = _counts()
    until = f"{grant.ends_at:%Y-%m-%d %H:%M} UTC"

    api = _api(
        alice, {"role": "readonly", "duration_minutes": 60, "justification": "Another reason entirely"}
    )
    assert api.status_code == 400
    assert api.json() == {
        "role": [f"You already have access to Read-only until {until}: extend it from its page instead."]
    }

    form = _client(alice).post(
        FORM, {"role": acme.role.pk, "duration_minutes": 60, "justification": "Another reason entirely"}
    )
    assert form.status_code == 400
    assert (
        f"You already have access to Read-only until {until}: extend it from its page instead."
        in form.content.decode()
    )

    assert _counts() == before
    assert _snapshot(grant) == snapshot


def test_a_pending_grant_also_blocks_an_overlapping_request(acme, alice):
    """Even before activation (the worker has not run), the first grant counts as current."""
    request_create(requester=alice, role=acme.role, justification=GOOD_REASON, duration=timedelta(minutes=30))
    grant = Grant.objects.get(user=alice)
    assert grant.status == Grant.Status.PENDING
    snapshot, before = _snapshot(grant), _counts()
    response = _api(alice, {"role": "readonly", "duration_minutes": 30, "justification": GOOD_REASON})
    assert response.status_code == 400 and list(response.json()) == ["role"]
    assert _counts() == before
    assert _snapshot(grant) == snapshot


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_requests_for_the_same_role_make_one_grant(acme, alice):
    """Double-click or two tabs: both requests pass the overlap check before either commits; the database's
    one-open-grant constraint lets exactly one through, and the other is refused with a message and leaves no
    AccessRequest or audit event behind (its whole transaction rolls back)."""
    import threading

    from django.core.exceptions import ValidationError
    from django.db import connection

    from tests.helpers import purge_broker

    barrier = threading.Barrier(2)
    outcomes: list[object] = [None, None]

    def request(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[i] = request_create(
                requester=alice, role=acme.role, justification=GOOD_REASON, duration=timedelta(minutes=30)
            )
        except ValidationError as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    before = _counts()
    threads = [threading.Thread(target=request, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    purge_broker()  # the winner's activation was queued on commit; no worker runs here

    created = [o for o in outcomes if isinstance(o, AccessRequest)]
    refused = [o for o in outcomes if isinstance(o, ValidationError)]
    assert len(created) == 1 and len(refused) == 1, outcomes
    assert list(refused[0].message_dict) == ["role"]
    assert Grant.objects.get(user=alice).request == created[0]
    requests_, grants, events = _counts()
    assert (requests_, grants) == (before[0] + 1, before[1] + 1)
    # The winner's three events (request created, approved, grant created), nothing from the loser.
    assert events == before[2] + 3
