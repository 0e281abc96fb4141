"""The backbone, with every box real: oidc-provider signs Alice in, a Celery worker over the real broker
activates and expires her grant, STS credentials come from the moto server."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest
import requests
from django.utils import timezone

from grants.models import CredentialIssue, Grant
from portal import aws
from portal.models import AuditEvent, User
from tests.fixtures.domain import build_partner
from tests.helpers import begin_oidc_sign_in, csrf_headers, wait_for
from tests.peers.oidc_idp import sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_sign_in_request_activate_mint_expire(live_server, acme_idp, celery_worker_process, local_aws):
    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret")
    http = requests.Session()

    landed = sign_in(http, begin_oidc_sign_in(http, live_server.url, "acme"), "alice", "alice-pw")
    assert landed.status_code == 200 and landed.url == f"{live_server.url}/"
    assert "Acme Corp" in landed.text and "Request access" in landed.text
    alice = User.objects.get(socialaccount__provider="acme", socialaccount__uid="acme-0001")
    assert alice.membership.partner == world.partner and alice.membership.groups == ["engineers"]
    assert not alice.has_usable_password()

    created = http.post(
        f"{live_server.url}/api/v1/access-requests/",
        headers=csrf_headers(http),
        json={"role": "readonly", "justification": "Inventory check for TICKET-42", "duration_minutes": 30},
    )
    assert created.status_code == 201, created.text
    grant_id = created.json()["id"]
    wait_for(
        lambda: Grant.objects.get(pk=grant_id).status == Grant.Status.ACTIVE,
        timeout=30,
        what=f"the worker to activate the grant\n{celery_worker_process.output()}",
    )

    minted = http.post(f"{live_server.url}/api/v1/grants/{grant_id}/credentials/", headers=csrf_headers(http))
    assert minted.status_code == 200, minted.text
    assert minted.headers["Cache-Control"] == "no-store"
    creds = minted.json()
    assert creds["Version"] == 1
    caller = boto3.client(
        "sts",
        endpoint_url=local_aws,
        region_name="eu-west-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).get_caller_identity()
    account = world.partner.aws_account_id
    session_name = f"porte-g{grant_id}-{alice.public_id.hex[:8]}"
    assert caller["Account"] == account
    assert caller["Arn"] == f"arn:aws:sts::{account}:assumed-role/porte-readonly/{session_name}"
    issue = CredentialIssue.objects.get(grant_id=grant_id)
    assert issue.access_key_id == creds["AccessKeyId"] and issue.kind == "cli"

    # Simulate the passage of time for the worker process (it has its own clock): the grant ends in a second.
    Grant.objects.filter(pk=grant_id).update(ends_at=timezone.now() + timedelta(seconds=1))
    wait_for(
        lambda: Grant.objects.get(pk=grant_id).status == Grant.Status.EXPIRED,
        timeout=30,
        what=f"the beat sweeper to expire the grant\n{celery_worker_process.output()}",
    )

    grant = Grant.objects.get(pk=grant_id)
    iam = aws.partner(account).iam
    deny = iam.get_role_policy(RoleName="porte-readonly", PolicyName="porte-revocations")["PolicyDocument"]
    deny = json.loads(deny) if isinstance(deny, str) else deny
    assert deny["Statement"] == [
        {
            "Sid": "PorteRevoked" + grant.deny_cutoff.strftime("%Y%m%dT%H%M%SZ"),
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:SourceIdentity": alice.source_identity},
                "DateLessThan": {"aws:TokenIssueTime": grant.deny_cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")},
            },
        }
    ]
    assert grant.deny_cutoff >= issue.issued_at
    refused = http.post(
        f"{live_server.url}/api/v1/grants/{grant_id}/credentials/", headers=csrf_headers(http)
    )
    assert refused.status_code == 409 and "expired" in refused.json()["detail"]
    assert list(
        AuditEvent.objects.filter(object_type="grants.grant", object_id=str(grant_id)).values_list(
            "action", flat=True
        )
    ) == ["grant.created", "grant.activated", "grant.expired"]
