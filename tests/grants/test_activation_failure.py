"""Activation when AWS cannot be reached: the failure is recorded and shown, nothing is half-done, and the grant
activates once AWS is back and the reconciler re-drives it.

The failing part calls the task in-process with Celery's eager `.apply()`: it runs the task's real code (the
retry policy included) synchronously, so its outcome can be asserted exactly. The path through a real worker
and broker is covered by the second half of the first test (and by tests/test_end_to_end.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client

from approvals.services import request_create
from grants import tasks
from grants.models import CredentialIssue, Grant
from grants.services import activation, reconciliation
from partners.models import Partner
from portal import aws
from portal.models import AuditEvent
from tests.fixtures.domain import sign_in_as
from tests.helpers import purge_broker, wait_for
from tests.peers.oidc_idp import free_port

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE = "AWS could not be reached (EndpointConnectionError)."


@pytest.fixture(autouse=True)
def _no_stray_activations() -> Iterator[None]:
    # Requests queue their activation on commit; tests that start no worker leave it behind otherwise.
    yield
    purge_broker()


@pytest.fixture
def aws_down(settings, local_aws: str) -> Iterator[None]:
    """AWS unreachable: nothing listens on this loopback port (connection refused)."""
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    aws.reset_caches()
    yield
    settings.AWS_ENDPOINT_URL = local_aws
    aws.reset_caches()


def _request(alice, acme) -> Grant:  # type: ignore[no-untyped-def]
    request = request_create(
        requester=alice, role=acme.role, justification="Inventory TICKET-42", duration=timedelta(minutes=30)
    )
    return request.grant


def _grant_events(grant: Grant) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type="grants.grant", object_id=str(grant.pk)).values_list(
            "action", flat=True
        )
    )


def test_unreachable_aws_is_recorded_then_redrive_activates_through_the_worker(
    request, acme, alice, aws_down, settings, local_aws
):
    """AWS down: every attempt is recorded (reason, count, audit), the grant stays pending and unusable, the
    holder sees why. AWS back: the reconciler's re-drive goes through the broker to a real worker, which
    activates the grant and clears the reason."""
    grant = _request(alice, acme)

    result = tasks.grant_activate.apply(args=[grant.pk])

    # Eager retries ignore the countdown and run at once, recursively: the task runs 1 + max_retries times, each
    # run records the failure, and past the last retry the AWS error surfaces as the task's failure.
    runs = tasks.grant_activate.max_retries + 1
    assert result.state == "FAILURE"
    assert isinstance(result.result, aws.AwsUnavailable) and str(result.result) == UNREACHABLE
    grant.refresh_from_db()
    assert grant.status == Grant.Status.PENDING
    assert grant.failure_reason == UNREACHABLE
    assert grant.attempts == runs
    assert grant.activated_at is None and grant.ended_at is None
    assert not CredentialIssue.objects.exists()
    assert _grant_events(grant) == ["grant.created"] + ["grant.activation_retry"] * runs

    # The holder sees what happened and that Porte keeps trying; no way to use the grant is offered.
    alice_client = Client()
    sign_in_as(alice_client, alice)
    page = alice_client.get(f"/grants/{grant.pk}/").content.decode()
    assert f"{UNREACHABLE} — retrying automatically (attempt {runs})." in page
    assert "Activating" in page and "Open AWS console" not in page
    minted = alice_client.post(f"/api/v1/grants/{grant.pk}/credentials/")
    assert minted.status_code == 409 and minted.json() == {
        "detail": "This grant is still activating; try again in a moment."
    }

    # AWS is back. A real worker starts (its broker purged first, so only the re-drive below reaches it),
    # the reconciler's re-drive queues the activation again, and the worker completes it.
    settings.AWS_ENDPOINT_URL = local_aws
    aws.reset_caches()
    worker = request.getfixturevalue("celery_worker_process")
    assert reconciliation.grants_redrive_stuck(lease=timedelta(0)) == [grant.pk]
    wait_for(
        lambda: Grant.objects.get(pk=grant.pk).status == Grant.Status.ACTIVE,
        timeout=30,
        what=lambda: f"the worker to activate the re-driven grant\n{worker.output()}",
    )
    grant.refresh_from_db()
    assert grant.failure_reason == "" and grant.activated_at is not None
    assert _grant_events(grant)[-1] == "grant.activated"
    assert AuditEvent.objects.get(object_id=str(grant.pk), action="grant.activated").data == {
        "attempts": runs + 1
    }
    # Nothing is pending any more, so the next re-drive queues nothing.
    assert reconciliation.grants_redrive_stuck(lease=timedelta(0)) == []


def test_redrive_leaves_recent_requests_to_their_own_task(acme, alice):
    """Within the lease a pending grant still belongs to its first activation message: not re-queued."""
    grant = _request(alice, acme)
    assert reconciliation.grants_redrive_stuck(lease=timedelta(minutes=5)) == []
    assert reconciliation.grants_redrive_stuck(lease=timedelta(0)) == [grant.pk]


def test_recovery_by_calling_the_service_directly(acme, alice, aws_down, settings, local_aws):
    """The same recovery without a worker: the activation service (what the task calls) succeeds once AWS
    answers, clears the reason, and a duplicate delivery of the task afterwards changes nothing."""
    grant = _request(alice, acme)
    assert tasks.grant_activate.apply(args=[grant.pk]).state == "FAILURE"
    settings.AWS_ENDPOINT_URL = local_aws
    aws.reset_caches()

    activated = activation.grant_activate(grant_id=grant.pk)
    assert activated.status == Grant.Status.ACTIVE and activated.failure_reason == ""
    events = AuditEvent.objects.count()
    again = tasks.grant_activate.apply(args=[grant.pk])
    assert again.state == "SUCCESS" and again.result == "active"
    assert AuditEvent.objects.count() == events


def test_a_permanent_refusal_fails_the_grant_without_retrying(acme, alice):
    """A refusal that retrying cannot fix (here the partner was suspended, set directly in the database
    between request and activation) ends the grant as `failed`, once, with the reason."""
    grant = _request(alice, acme)
    Partner.objects.filter(pk=acme.partner.pk).update(status=Partner.Status.SUSPENDED)

    result = tasks.grant_activate.apply(args=[grant.pk])

    assert result.state == "SUCCESS" and result.result == "failed"
    grant.refresh_from_db()
    assert grant.status == Grant.Status.FAILED
    assert grant.failure_reason == "The partner is not active."
    assert grant.attempts == 1 and grant.ended_at is not None
    assert _grant_events(grant) == ["grant.created", "grant.failed"]
    assert not CredentialIssue.objects.exists()
