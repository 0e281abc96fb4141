"""The directory's whole story with every box real: the partner's directory provisions Alice over HTTP before she
ever signs in, she signs in through her IdP (oidc-provider) as that same person, a Celery worker activates her
grant and she mints STS credentials (moto); then the directory deactivates her, and within seconds her
session and grant are over and the deny naming her is on the role."""

from __future__ import annotations

import time

import pytest
import requests

from directory import services
from grants.models import Grant
from portal.models import User
from tests.fixtures.domain import build_partner, make_staff
from tests.helpers import (
    assert_audit_chain_whole,
    begin_oidc_sign_in,
    csrf_headers,
    denied_identities,
    role_inline_policy,
    wait_for,
)
from tests.peers.oidc_idp import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCIM = "application/scim+json"


def test_a_person_the_directory_deactivates_loses_access_within_seconds(
    live_server, acme_idp, celery_worker_process, local_aws
):
    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret")
    _connection, token = services.directory_token_rotate(partner=world.partner, actor=make_staff("sam"))
    directory = requests.Session()
    directory.headers.update({"Authorization": f"Bearer {token}", "Content-Type": SCIM})
    scim = f"{live_server.url}/scim/v2"

    created = directory.post(
        f"{scim}/Users",
        json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "externalId": "acme-0001",  # Alice's subject at her IdP
            "userName": "alice@acme.example",
            "name": {"givenName": "Alice", "familyName": "Martin"},
            "active": True,
        },
    )
    assert created.status_code == 201, created.text
    alice_id = created.json()["id"]
    grouped = directory.post(
        f"{scim}/Groups", json={"displayName": "engineers", "members": [{"value": alice_id}]}
    )
    assert grouped.status_code == 201, grouped.text
    provisioned = User.objects.get(membership__scim_id=alice_id)

    browser = requests.Session()
    landed = sign_in(browser, begin_oidc_sign_in(browser, live_server.url, "acme"), "alice", "alice-pw")
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/", landed.text[:300]
    assert User.objects.filter(membership__partner=world.partner).get() == provisioned

    requested = browser.post(
        f"{live_server.url}/api/v1/access-requests/",
        headers=csrf_headers(browser),
        json={"role": "readonly", "justification": "Inventory check for TICKET-42", "duration_minutes": 30},
    )
    assert requested.status_code == 201, requested.text
    grant_id = requested.json()["id"]
    wait_for(
        lambda: Grant.objects.get(pk=grant_id).status == Grant.Status.ACTIVE,
        timeout=30,
        what=lambda: f"the worker to activate the grant\n{celery_worker_process.output()}",
    )
    minted = browser.post(
        f"{live_server.url}/api/v1/grants/{grant_id}/credentials/", headers=csrf_headers(browser)
    )
    assert minted.status_code == 200, minted.text

    started = time.monotonic()
    deactivated = directory.patch(
        f"{scim}/Users/{alice_id}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    answered = time.monotonic() - started
    assert deactivated.status_code == 200 and deactivated.json()["active"] is False, deactivated.text

    account = world.partner.aws_account_id
    wait_for(
        lambda: (
            Grant.objects.get(pk=grant_id).status == Grant.Status.REVOKED
            and provisioned.source_identity
            in [
                identity
                for identity, _ in denied_identities(
                    role_inline_policy(account, "porte-readonly", "porte-revocations")
                )
            ]
        ),
        timeout=30,
        what=lambda: f"the revocation worker to put the deny\n{celery_worker_process.output()}",
    )
    denied = time.monotonic() - started
    print(
        f"SCIM deactivation: answered in {answered * 1000:.0f} ms, deny on the role after {denied:.2f} s"
    )  # -s

    # Her browser session is over: the next page is the sign-in page; her credentials cannot be minted again.
    after = browser.get(f"{live_server.url}/")
    assert "/accounts/login/" in after.url or "/sign-in/" in after.url, after.url
    refused = browser.post(
        f"{live_server.url}/api/v1/grants/{grant_id}/credentials/", headers=csrf_headers(browser)
    )
    assert refused.status_code in (401, 403)
    # The IdP still knows her, but Porte does not let her back in.
    again = requests.Session()
    refused_sign_in = sign_in(again, begin_oidc_sign_in(again, live_server.url, "acme"), "alice", "alice-pw")
    assert refused_sign_in.url != f"{live_server.url}/"
    assert_audit_chain_whole()
