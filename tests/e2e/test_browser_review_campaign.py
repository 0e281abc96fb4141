"""A whole access review in a real browser (headless Chromium via Playwright): a staff member signs in (password
and TOTP) and starts Acme's review with its partner admins as reviewers; Acme's admin signs in through Acme's
IdP (oidc-provider), finds her items under "Reviews" and decides some; the deadline passes (the deadline service
is called with a time past it, as beat would then); the undecided items are revoked — eligibility gone, the open
grant ended with the deny on the role in moto — and staff download the report, CSV and PDF, whose content
matches the decisions and names the audit chain's verified range.

What it proves beyond tests/reviews: the pages work as served (CSRF tokens in the decide forms, CSP, navigation,
downloads), with a real staff sign-in and a real partner sign-in.
"""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from allauth.socialaccount.models import SocialAccount
from django.db import connection
from pypdf import PdfReader

from approvals.services import request_create
from grants import policies, provisioning
from grants.models import Eligibility, Grant
from grants.services import activation, expiry, role_setup
from partners.models import Membership
from portal.models import AuditEvent, User
from reviews import services as reviews
from reviews.models import ReviewCampaign, ReviewItem
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_browser, sign_in_through_idp
from tests.fixtures.domain import STAFF_TOTP_SECRET, build_partner, make_member, make_staff
from tests.fixtures.peers import ALICE
from tests.helpers import denied_identities, fresh_totp_code, purge_broker, role_inline_policy
from tests.reviews.conftest import OPS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _in_thread(work: Callable[[], Any]) -> Any:
    # Playwright's sync API runs an event loop in this thread, where Django refuses blocking ORM calls.
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert result, "the work in the thread did not finish"
    return result[0]


def _open_grant(user: User, role) -> Grant:  # type: ignore[no-untyped-def]
    request = request_create(
        requester=user, role=role, justification="Quarterly maintenance", duration=timedelta(minutes=60)
    )
    return activation.grant_activate(grant_id=request.grant.pk)


def test_a_review_campaign_in_a_browser(live_server, acme_idp, local_aws, tmp_path: Path):
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    world = build_partner("acme", issuer=acme_idp.issuer, client_secret="acme-client-secret")
    sam = make_staff("sam")
    sam.email = "sam@porte.example"
    sam.save()
    world.partner.sponsor = sam
    world.partner.save(update_fields=["sponsor"])
    ops = role_setup.role_create(
        partner=world.partner,
        slug="ops",
        name="Operations",
        inline_policy=OPS,
        permissions_boundary_arn=world.role.permissions_boundary_arn,
        max_duration=timedelta(hours=2),
    )
    provisioning.role_provision(role=ops)
    # Alice, Acme's partner admin, known to Porte by her IdP subject (she signed in before).
    alice = User.objects.create_user(username="acme.acme-0001", email=ALICE.email, first_name="Alice")
    alice.set_unusable_password()
    alice.save()
    SocialAccount.objects.create(user=alice, provider="acme", uid=ALICE.sub)
    Membership.objects.create(
        user=alice,
        partner=world.partner,
        identity_provider=world.partner.identity_providers.get(),
        groups=["engineers"],
        is_partner_admin=True,
    )
    bob = make_member(world.partner, "bob", groups=())
    carol = make_member(world.partner, "carol", groups=())
    for person in (bob, carol):
        ops.eligibilities.create(user=person)
    bob_grant = _open_grant(bob, ops)
    purge_broker()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            staff = browser.new_context(accept_downloads=True).new_page()
            staff.set_default_timeout(15_000)
            staff.goto(f"{live_server.url}/accounts/login/")
            staff.get_by_label("Username").fill("sam")
            staff.get_by_label("Password").fill("sam-Staff-pw-1")
            staff.get_by_role("button", name="Sign in").click()
            staff.locator("input[name=code]").fill(fresh_totp_code(STAFF_TOTP_SECRET))
            staff.locator("form button[type=submit]").first.click()
            staff.locator("header nav").get_by_role("link", name="Reviews").click()
            expect(staff.get_by_role("heading", name="Access reviews")).to_be_visible()
            staff.get_by_label("Partner").select_option(label="Acme Corp")
            staff.get_by_label("Reviewer").select_option(value="partner_admins")
            staff.get_by_role("button", name="Start review").click()
            expect(staff.get_by_text(re.compile(r"Review #\d+ of Acme Corp started\."))).to_be_visible()
            campaign_id = int(re.search(r"/staff/reviews/(\d+)/", staff.url).group(1))  # type: ignore[union-attr]
            expect(staff.get_by_text("never used: revoke").first).to_be_visible()

            items = _in_thread(
                lambda: {
                    (i.kind, i.subject_id): i.pk for i in ReviewItem.objects.filter(campaign_id=campaign_id)
                }
            )
            carol_ops = items[("eligibility", carol.pk)]
            group_readonly = items[("group_eligibility", None)]
            bob_ops = items[("eligibility", bob.pk)]

            # Acme's admin signs in through Acme's IdP and reviews.
            page = browser.new_page()
            page.set_default_timeout(15_000)
            sign_in_through_idp(page, live_server.url, ALICE)
            page.get_by_role("link", name="Reviews").click()
            expect(page.get_by_role("heading", name="Acme Corp · access reviews")).to_be_visible()
            # Her own membership and admin status are not hers to review.
            expect(page.get_by_text("is a partner admin of Acme Corp")).to_have_count(0)

            row = page.locator(f"#item-{carol_ops}")
            row.get_by_label("Keep").check()
            row.get_by_role("button", name="Decide").click()
            expect(page.get_by_text(f"Item #{carol_ops}")).to_be_visible()

            row = page.locator(f"#item-{group_readonly}")
            row.get_by_label("Narrow").check()
            row.get_by_role("button", name="Decide").click()
            expect(page.get_by_text("Say what to remove from this access.")).to_be_visible()
            page.get_by_role("link", name="Back").click()  # nothing was changed: back to the list
            row = page.locator(f"#item-{group_readonly}")
            row.get_by_label("Narrow").check()
            row.get_by_label("Comment").fill("Only ec2:DescribeInstances is used: drop the rest")
            row.get_by_role("button", name="Decide").click()
            expect(page.get_by_text(f"Item #{group_readonly} (IdP group engineers")).to_be_visible()
            expect(page.locator(f"#item-{bob_ops}").get_by_role("button", name="Decide")).to_be_visible()

            # The deadline passes with Bob's eligibility (and others) undecided; then the worker's part.
            def deadline() -> int:
                campaign = ReviewCampaign.objects.get(pk=campaign_id)
                settled = reviews.review_deadlines_enforce(now=campaign.deadline + timedelta(minutes=1))
                expiry.role_finish_endings(role_id=ops.pk)
                return settled

            settled = _in_thread(deadline)
            purge_broker()

            staff.reload()
            expect(staff.get_by_text("Closed", exact=True).first).to_be_visible()
            with staff.expect_download() as csv_download:
                staff.get_by_role("link", name="Report (CSV)").click()
            csv_text = Path(csv_download.value.path()).read_text()
            with staff.expect_download() as pdf_download:
                staff.get_by_role("link", name="Report (PDF)").click()
            pdf_bytes = Path(pdf_download.value.path()).read_bytes()
            assert pdf_download.value.suggested_filename == f"porte-review-acme-{campaign_id}.pdf"
        finally:
            browser.close()

    campaign = ReviewCampaign.objects.get(pk=campaign_id)
    assert campaign.status == ReviewCampaign.Status.CLOSED
    decided = {i.pk: i for i in campaign.items.all()}
    assert settled == len(decided) - 2
    assert (decided[carol_ops].decision, decided[carol_ops].decided_by) == ("keep", alice)
    assert decided[group_readonly].decision == "narrow" and decided[group_readonly].follow_up_done_at is None
    assert (decided[bob_ops].decision, decided[bob_ops].by_deadline) == ("revoke", True)
    # Bob's eligibility is gone and his open grant ended with the deny on the role, in moto.
    assert not Eligibility.objects.filter(role=ops, user=bob).exists()
    bob_grant.refresh_from_db()
    assert bob_grant.status == Grant.Status.REVOKED
    document = role_inline_policy(
        world.partner.aws_account_id, ops.iam_name, policies.REVOCATIONS_POLICY_NAME
    )
    assert (bob.source_identity, policies.iso(bob_grant.deny_cutoff)) in denied_identities(document)
    # The narrow decision changed nothing: the group is still eligible.
    assert Eligibility.objects.filter(role=world.role, group="engineers").exists()

    rows = list(csv.reader(io.StringIO(csv_text)))
    header = dict(r for r in rows if len(r) == 2)
    sealed = AuditEvent.objects.filter(seq__isnull=False)
    first = sealed.filter(at__gte=campaign.period_start).order_by("seq").first()
    last = sealed.filter(at__lte=campaign.closed_at).order_by("-seq").first()
    assert first is not None and last is not None
    assert header["audit first"] == f"#{first.seq} {first.hash}"
    assert header["audit last"] == f"#{last.seq} {last.hash}"
    assert header["audit chain"] == "chain verified"
    table = {r[0]: r for r in rows[rows.index(reviews_report_columns()) + 1 :]}
    assert len(table) == len(decided)
    assert table[str(carol_ops)][12:14] == ["keep", "acme.acme-0001"]
    assert table[str(group_readonly)][12] == "narrow"
    assert table[str(group_readonly)][-1] == "Only ec2:DescribeInstances is used: drop the rest"
    assert table[str(bob_ops)][12:14] == ["revoke", "deadline"]

    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf_bytes)).pages).replace("\n", " ")
    assert f"Access review #{campaign_id}: Acme Corp" in text and "chain verified" in text
    assert first.hash in text.replace(" ", "") and last.hash in text.replace(" ", "")


def reviews_report_columns() -> list[str]:
    from reviews.report import COLUMNS

    return COLUMNS
