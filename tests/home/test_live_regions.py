"""Live regions: where work is queued, the page asks for itself again (htmx) and swaps the region for its new
version until the work is done; then the region is rendered without asking, and the asking stops.

Server side here (what each page renders, in each state); tests/e2e/test_browser_sign_in.py watches a grant
become usable in a real browser without a reload."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client

from approvals.models import ApprovalPolicy
from approvals.services import request_create
from grants.models import Grant
from partners.models import BaselineStep
from tests.fixtures.domain import build_partner, make_member, make_staff, sign_in_as

pytestmark = pytest.mark.django_db


def _region(page: str, region: str) -> str:
    """The opening tag of the region `region`."""
    match = re.search(rf'<[a-z]+ [^>]*id="{region}"[^>]*>', page)
    assert match, f"no region {region}"
    return match.group(0)


def _asks(tag: str, url: str, every: int) -> bool:
    return (
        f'hx-get="{url}"' in tag
        and f'hx-trigger="every {every}s"' in tag
        and 'hx-swap="outerHTML"' in tag
        and re.search(r'hx-select="#[\w-]+"', tag) is not None
    )


def test_a_grant_page_asks_while_the_grant_activates_then_stops() -> None:
    acme = build_partner("acme", provision=False)
    alice = make_member(acme.partner, "alice")
    grant = request_create(
        requester=alice, role=acme.role, justification="Inventory check", duration=timedelta(minutes=30)
    ).grant
    client = sign_in_as(Client(), alice)
    url = f"/grants/{grant.pk}/"

    pending = client.get(url).content.decode()
    assert grant.status == Grant.Status.PENDING
    assert _asks(_region(pending, "grant"), url, 2) and 'http-equiv="refresh"' not in pending

    Grant.objects.filter(pk=grant.pk).update(status=Grant.Status.ACTIVE)
    active = client.get(url).content.decode()
    assert "hx-get" not in _region(active, "grant")


def test_a_partner_page_asks_while_its_steps_run_and_stops_at_a_failure() -> None:
    acme = build_partner("acme", provision=False)
    client = sign_in_as(Client(), make_staff("sam"))
    url = f"/staff/partners/{acme.partner.slug}/"

    assert "hx-get" not in _region(client.get(url).content.decode(), "aws")  # nothing asked for yet
    for name in BaselineStep.Name.values:
        BaselineStep.objects.update_or_create(
            partner=acme.partner, name=name, defaults={"status": BaselineStep.Status.PENDING}
        )
    running = client.get(url).content.decode()
    assert _asks(_region(running, "aws"), url, 2) and running.count(">In progress</span>") == len(
        BaselineStep.Name.values
    )

    BaselineStep.objects.filter(partner=acme.partner, name=BaselineStep.Name.values[0]).update(
        status=BaselineStep.Status.FAILED, error="AccessDenied"
    )
    assert "hx-get" not in _region(client.get(url).content.decode(), "aws")  # stopped until asked again


def test_the_requester_watches_for_the_decision_but_an_approvers_form_stays_put() -> None:
    acme = build_partner("acme", provision=False)
    alice = make_member(acme.partner, "alice")
    pat = make_member(acme.partner, "pat", partner_admin=True, groups=("approvers",))
    ApprovalPolicy.objects.create(
        role=acme.role,
        approvals_required=1,
        approvers=ApprovalPolicy.Approvers.EITHER,
        partner_approver_group="approvers",
    )
    request = request_create(
        requester=alice, role=acme.role, justification="Inventory check", duration=timedelta(minutes=30)
    )
    url = f"/requests/{request.pk}/"

    assert _asks(_region(sign_in_as(Client(), alice).get(url).content.decode(), "request"), url, 5)
    approver_page = sign_in_as(Client(), pat).get(url).content.decode()
    assert "Approve</button>" in approver_page and "hx-get" not in _region(approver_page, "request")


def test_the_activity_banner_is_its_own_partial_and_keeps_asking() -> None:
    acme = build_partner("acme", provision=False)
    client = sign_in_as(Client(), make_staff("sam"))

    home = client.get("/staff/").content.decode()
    assert _asks(_region(home, "activity-lag"), "/activity/lag/", 60)
    partial = client.get("/activity/lag/")
    assert partial.status_code == 200
    body = partial.content.decode()
    assert body.lstrip().startswith('<div id="activity-lag"') and "<html" not in body
    assert _asks(_region(body, "activity-lag"), "/activity/lag/", 60)
    # A partner person who is no staff reaches it too (the activity page shows the banner), never a visitor.
    assert sign_in_as(Client(), make_member(acme.partner, "alice")).get("/activity/lag/").status_code == 200
    assert Client().get("/activity/lag/").status_code == 302
