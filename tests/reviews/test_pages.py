"""Review consoles: staff see every partner's reviews; a partner admin sees their partner's items assigned to its
admins (never their own access); everyone else, and every other partner, gets 404. Decisions are POSTs with CSRF."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.models import User
from reviews import services
from reviews.models import ReviewCampaign, ReviewerMode, ReviewItem
from tests.fixtures.domain import make_member, sign_in_as
from tests.reviews.conftest import ReviewWorld

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


def _as(user: User, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    sign_in_as(client, user)
    return client


@pytest.fixture
def campaign(world: ReviewWorld) -> ReviewCampaign:
    return services.review_campaign_start(partner=world.partner, reviewer=ReviewerMode.PARTNER_ADMINS)


@pytest.fixture
def globex_admin(globex) -> User:  # type: ignore[no-untyped-def]
    return make_member(globex.partner, "gina", partner_admin=True)


def test_staff_start_list_detail_and_reports(world: ReviewWorld) -> None:
    staff = _as(world.sponsor)
    assert b"Reviews</a>" in staff.get("/staff/reviews/").content
    response = staff.post("/staff/reviews/start/", {"partner": world.partner.pk, "reviewer": ""})
    campaign = ReviewCampaign.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/staff/reviews/{campaign.pk}/"
    assert (campaign.kind, campaign.started_by) == ("on_demand", world.sponsor)
    page = staff.get(f"/staff/reviews/{campaign.pk}/").content.decode()
    assert "admin without sign-in for 70 days: revoke admin" in page and "Decision on item" in page
    again = staff.post("/staff/reviews/start/", {"partner": world.partner.pk}, follow=True)
    assert "has a review open already" in again.content.decode()
    csv_response = staff.get(f"/staff/reviews/{campaign.pk}/report.csv")
    assert csv_response["Content-Type"].startswith("text/csv") and b"audit chain" in csv_response.content
    pdf_response = staff.get(f"/staff/reviews/{campaign.pk}/report.pdf")
    assert pdf_response.content.startswith(b"%PDF")
    assert staff.get(f"/staff/reviews/{campaign.pk}/report.xls").status_code == 404


def test_staff_review_settings(world: ReviewWorld) -> None:
    staff = _as(world.sponsor)
    url = f"/staff/partners/{world.partner.slug}/review-settings/"
    assert f'href="{url}"' in staff.get(f"/staff/partners/{world.partner.slug}/").content.decode()
    assert staff.get(url).status_code == 200
    bad = staff.post(
        url, {"interval_days": 30, "reviewer": "partner_admins", "response_days": 40, "on_deadline": "revoke"}
    )
    assert bad.status_code == 400 and "before the next review starts" in bad.content.decode()
    ok = staff.post(
        url,
        {"interval_days": 30, "reviewer": "partner_admins", "response_days": 7, "on_deadline": "escalate"},
    )
    assert ok.status_code == 302
    campaign = services.review_campaign_start(partner=world.partner)
    assert (campaign.reviewer, campaign.on_deadline) == ("partner_admins", "escalate")
    assert (campaign.deadline - campaign.started_at).days == 7


def test_partner_admin_sees_and_decides_their_items_only(
    world: ReviewWorld, campaign: ReviewCampaign
) -> None:
    pat = _as(world.pat, csrf=True)
    page = pat.get("/reviews/")
    body = page.content.decode()
    assert page.status_code == 200 and 'href="/reviews/">Reviews</a>' in body
    assert "bob@acme.example may request Operations" in body
    assert "pat@acme.example is a partner admin" not in body and "pat@acme.example is a member" not in body

    bob_ops = campaign.items.get(kind="eligibility", subject=world.bob)
    url = f"/reviews/items/{bob_ops.pk}/decide/"
    assert pat.post(url, {"decision": "revoke", "comment": "Never used"}).status_code == 403  # no CSRF token
    token = pat.cookies["csrftoken"].value
    missing_comment = pat.post(url, {"decision": "revoke", "csrfmiddlewaretoken": token}, follow=True)
    assert "Say why." in missing_comment.content.decode()
    decided = pat.post(
        url, {"decision": "revoke", "comment": "Never used", "csrfmiddlewaretoken": token}, follow=True
    )
    assert "revoke recorded" in decided.content.decode()
    bob_ops.refresh_from_db()
    assert (bob_ops.decision, bob_ops.decided_by) == ("revoke", world.pat)

    # Pat's own items answer 404 to Pat, like a missing item.
    for item in campaign.items.filter(subject=world.pat):
        response = pat.post(
            f"/reviews/items/{item.pk}/decide/", {"decision": "keep", "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 404
        assert ReviewItem.objects.get(pk=item.pk).decision == ""


def test_outsiders_get_404(
    world: ReviewWorld, campaign: ReviewCampaign, globex_admin: User, mallory: User
) -> None:
    item = campaign.items.get(kind="eligibility", subject=world.bob)
    staff_pages = [
        "/staff/reviews/",
        f"/staff/reviews/{campaign.pk}/",
        f"/staff/reviews/{campaign.pk}/report.csv",
        f"/staff/reviews/{campaign.pk}/report.pdf",
        f"/staff/partners/{world.partner.slug}/review-settings/",
    ]
    # Partner users (even Acme's admin) on staff pages; another partner's admin and users on Acme's items.
    for user in (world.pat, world.alice, globex_admin, mallory):
        client = _as(user)
        for url in staff_pages:
            assert client.get(url).status_code == 404, (user, url)
        assert client.post("/staff/reviews/start/", {"partner": world.partner.pk}).status_code == 404
        assert client.post(f"/staff/reviews/items/{item.pk}/follow-up-done/").status_code == 404
    for user in (world.alice, globex_admin, mallory):
        client = _as(user)
        assert client.post(f"/reviews/items/{item.pk}/decide/", {"decision": "keep"}).status_code == 404
    # Not an admin: no review page. Globex's admin: a page with nothing of Acme's.
    assert _as(world.alice).get("/reviews/").status_code == 404
    globex_page = _as(globex_admin).get("/reviews/").content.decode()
    assert "bob@acme.example" not in globex_page and "Acme" not in globex_page
    assert ReviewItem.objects.exclude(decision="").count() == 0
    assert _as(world.sponsor).get("/staff/reviews/999999/").status_code == 404


def test_staff_close_a_narrow_follow_up(world: ReviewWorld, campaign: ReviewCampaign) -> None:
    staff = _as(world.sponsor)
    item = campaign.items.get(kind="eligibility", subject=world.alice)
    decided = staff.post(
        f"/reviews/items/{item.pk}/decide/", {"decision": "narrow", "comment": "Drop s3:GetObject"}
    )
    assert decided.status_code == 302 and decided["Location"] == f"/staff/reviews/{campaign.pk}/"
    follow_ups = staff.get(f"/staff/reviews/{campaign.pk}/?show=follow-ups").content.decode()
    assert f'id="item-{item.pk}"' in follow_ups and "Role changed: follow-up done" in follow_ups
    assert staff.get("/staff/reviews/").context["campaigns"][0].follow_ups == 1
    staff.post(f"/staff/reviews/items/{item.pk}/follow-up-done/")
    assert (
        f'id="item-{item.pk}"'
        not in staff.get(f"/staff/reviews/{campaign.pk}/?show=follow-ups").content.decode()
    )
    item.refresh_from_db()
    assert item.follow_up_done_at is not None
