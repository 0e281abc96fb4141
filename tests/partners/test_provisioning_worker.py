"""Provisioning through a real Celery worker (with beat) on the real broker, against moto in server mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from partners import aws_account, services
from partners.models import BaselineStep, Partner
from portal import aws
from tests.fixtures.domain import sign_in_as
from tests.fixtures.peers import WorkerProcess, _purge_broker
from tests.helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

EMAIL = "aws+initech@partners.porte.invalid"


@pytest.fixture
def resuming_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    """A worker whose beat resumes provisioning that has been quiet for a second (300 s in production)."""
    _purge_broker()
    env = {**worker_env, "PORTE_PROVISION_RESUME_SECONDS": "1", "PORTE_ACCOUNT_POLL_SECONDS": "1"}
    worker = WorkerProcess(env, tmp_path / "worker.log", beat=True).start()
    yield worker
    worker.stop()


def accounts_with_email(email: str) -> list[str]:
    orgs = aws.management().organizations
    return [
        a["Id"]
        for page in orgs.get_paginator("list_accounts").paginate()
        for a in page["Accounts"]
        if a["Email"] == email
    ]


def all_done(partner: Partner) -> bool:
    statuses = list(BaselineStep.objects.filter(partner=partner).values_list("status", flat=True))
    return len(statuses) == len(BaselineStep.Name.values) and set(statuses) == {"done"}


def test_beat_resumes_vending_a_crashed_worker_left_behind(resuming_worker: WorkerProcess) -> None:
    """CreateAccount ran and its request id was saved; then the worker died (no task is left in the queue). The
    resume sweep finds the quiet pending step, re-queues the partner, and the task polls *that* request: one
    account, placed, guarded, with its network."""
    services.organization_ensure()
    partner = services.partner_create(name="Initech Corp", slug="initech", domains=["initech.example"])
    # What the staff request records, minus the queued message (lost with the crash).
    Partner.objects.filter(pk=partner.pk).update(aws_account_email=EMAIL)
    partner = aws_account.account_creation_start(partner=Partner.objects.get(pk=partner.pk))
    request_id = partner.aws_account_request_id
    assert request_id and not partner.aws_account_id

    wait_for(
        lambda: all_done(partner),
        timeout=90,
        what=lambda: f"provisioning resumed:\n{resuming_worker.output()}",
    )

    partner.refresh_from_db()
    orgs = aws.management().organizations
    created = orgs.describe_create_account_status(CreateAccountRequestId=request_id)["CreateAccountStatus"]
    assert partner.aws_account_id == created["AccountId"]
    assert accounts_with_email(EMAIL) == [partner.aws_account_id]
    assert "partners.tasks.provisioning_resume" in resuming_worker.output()


def test_staff_post_provisions_account_and_network_through_the_worker(
    resuming_worker: WorkerProcess, staff: Any
) -> None:
    services.organization_ensure()
    partner = services.partner_create(name="Initech Corp", slug="initech", domains=["initech.example"])
    client = Client()
    sign_in_as(client, staff)

    response = client.post(f"/staff/partners/{partner.slug}/provision/", {"email": EMAIL}, follow=True)
    assert "Provisioning queued" in response.content.decode()

    wait_for(
        lambda: all_done(partner), timeout=90, what=lambda: f"baseline done:\n{resuming_worker.output()}"
    )
    partner.refresh_from_db()
    assert accounts_with_email(EMAIL) == [partner.aws_account_id]
    page = client.get(f"/staff/partners/{partner.slug}/").content.decode()
    assert page.count('class="status status-active">Done') == len(BaselineStep.Name.values)
    vpc_id = BaselineStep.objects.get(partner=partner, name="vpc").resource_ids["vpc_id"]
    assert vpc_id in page

    # Asking again re-checks everything and makes nothing new.
    client.post(f"/staff/partners/{partner.slug}/provision/", {})
    ec2 = aws.partner(partner.aws_account_id, region=partner.aws_region).ec2
    wait_for(lambda: all_done(partner), timeout=60, what="second run done")
    assert [
        v["VpcId"]
        for v in ec2.describe_vpcs(Filters=[{"Name": "tag:porte:partner", "Values": ["initech"]}])["Vpcs"]
    ] == [vpc_id]
    assert accounts_with_email(EMAIL) == [partner.aws_account_id]
