"""Reminders before the deadline and the deadline itself (time-machine): undecided items are revoked (or kept and
escalated, as the partner chose), everyone concerned is told, and running it again changes nothing. The report
shows the decisions and the verified audit-chain range of the campaign's period."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
import time_machine
from pypdf import PdfReader

from grants.models import Eligibility, Grant
from partners.models import Membership
from portal.models import AuditEvent, Notification
from reviews import report, services
from reviews.models import DeadlineAction, ReviewCampaign, ReviewItem
from tests.helpers import purge_broker
from tests.reviews.conftest import ReviewWorld

pytestmark = [pytest.mark.django_db, pytest.mark.aws]


def _snapshot() -> tuple[int, int]:
    return AuditEvent.objects.count(), Notification.objects.count()


def test_reminders_three_days_and_one_day_before_once_each(world: ReviewWorld) -> None:
    campaign = services.review_campaign_start(partner=world.partner)
    assert services.review_reminders_send(now=campaign.deadline - timedelta(days=4)) == 0
    at_3 = campaign.deadline - timedelta(days=3) + timedelta(minutes=1)
    with time_machine.travel(at_3, tick=False):
        assert services.review_reminders_send() == 1
        assert services.review_reminders_send() == 0
    at_1 = campaign.deadline - timedelta(days=1) + timedelta(minutes=1)
    assert services.review_reminders_send(now=at_1) == 1
    assert services.review_reminders_send(now=at_1) == 0
    reminders = Notification.objects.filter(event="review.reminder")
    assert reminders.count() == 2 and all("9 items" in r.subject for r in reminders)
    campaign.refresh_from_db()
    assert campaign.reminders_sent == [3, 1]


def test_deadline_revokes_undecided_tells_everyone_and_runs_once(world: ReviewWorld) -> None:
    world.partner.webhook_url = "http://127.0.0.1:9/acme-hook"
    world.partner.save(update_fields=["webhook_url"])
    campaign = services.review_campaign_start(partner=world.partner)
    keep = campaign.items.get(kind="membership", subject=world.alice)
    services.review_item_decide(item=keep, decision="keep", comment="", actor=world.sponsor)

    with time_machine.travel(campaign.deadline + timedelta(minutes=1), tick=False):
        assert services.review_deadlines_enforce() == 8
    purge_broker()
    campaign.refresh_from_db()
    assert campaign.status == ReviewCampaign.Status.CLOSED
    undecided = campaign.items.exclude(pk=keep.pk)
    assert {(i.decision, i.by_deadline) for i in undecided} == {("revoke", True)}
    assert all(i.enacted_at is not None for i in undecided)
    # Everything was taken away but Alice's membership (kept): eligibilities gone, Pat no admin, members ended.
    assert not Eligibility.objects.filter(role__partner=world.partner).exists()
    assert Membership.objects.get(user=world.alice).is_active is True
    assert not Membership.objects.filter(
        user__in=[world.bob, world.carol, world.pat], is_active=True
    ).exists()
    assert Grant.objects.get(pk=world.alice_readonly.pk).status == Grant.Status.REVOKING
    closed = Notification.objects.get(event="review.closed")
    assert closed.recipients == ["sam@porte.example"] and closed.webhook_url == "http://127.0.0.1:9/acme-hook"
    assert "1 kept, 8 revoked" in closed.body
    told = {r for n in Notification.objects.filter(event="review.revoked") for r in n.recipients}
    assert told == {"alice@acme.example", "bob@acme.example", "carol@acme.example", "pat@acme.example"}

    before = _snapshot()
    with time_machine.travel(campaign.deadline + timedelta(hours=1), tick=False):
        assert services.review_deadlines_enforce() == 0
        assert services.reviews_tick() == {"started": 0, "reminded": 0, "settled": 0}
    assert _snapshot() == before


def test_deadline_can_keep_and_escalate(world: ReviewWorld) -> None:
    campaign = services.review_campaign_start(partner=world.partner, on_deadline=DeadlineAction.ESCALATE)
    services.review_deadlines_enforce(now=campaign.deadline)
    assert {(i.decision, i.escalated) for i in campaign.items.all()} == {("keep", True)}
    assert Eligibility.objects.filter(role__partner=world.partner).count() == 4
    assert "9 escalated" in Notification.objects.get(event="review.closed").body


def test_report_has_the_audit_range_and_matches_the_decisions(world: ReviewWorld) -> None:
    campaign = services.review_campaign_start(partner=world.partner)
    bob = campaign.items.get(kind="eligibility", subject=world.bob)
    services.review_item_decide(item=bob, decision="revoke", comment="Never used it", actor=world.sponsor)
    services.review_deadlines_enforce(now=campaign.deadline)
    purge_broker()
    campaign.refresh_from_db()

    text = report.report_csv(campaign)  # seals the chain's tail first: the report covers every event

    events = AuditEvent.objects.filter(at__gte=campaign.period_start, at__lte=campaign.closed_at).order_by(
        "seq"
    )
    first, last = events.first(), events.last()
    assert first is not None and last is not None and last.action == "review.closed"
    rows = list(csv.reader(io.StringIO(text)))
    header = dict(r for r in rows if len(r) == 2)
    assert header["audit first"] == f"#{first.seq} {first.hash}"
    assert header["audit last"] == f"#{last.seq} {last.hash}"
    assert header["audit chain"] == "chain verified"
    table = rows[rows.index(report.COLUMNS) + 1 :]
    assert len(table) == campaign.items.count() == 9
    decided = {r[0]: r for r in table}
    bob_row = decided[str(bob.pk)]
    col = report.COLUMNS.index
    assert (bob_row[col("decision")], bob_row[col("decided by")], bob_row[col("comment")]) == (
        "revoke",
        "sam",
        "Never used it",
    )
    assert bob_row[col("recommendation")] == "never used: revoke"
    for item in campaign.items.exclude(pk=bob.pk):
        assert decided[str(item.pk)][col("decision")] == "revoke"
        assert decided[str(item.pk)][col("decided by")] == "deadline"

    pdf = PdfReader(io.BytesIO(report.report_pdf(campaign)))
    words = " ".join(page.extract_text() for page in pdf.pages)
    assert f"Access review #{campaign.pk}: Acme Corp" in words
    assert first.hash in words.replace("\n", "") and last.hash in words.replace("\n", "")
    assert "chain verified" in words and "Never used it" in words


def test_report_says_when_the_chain_is_broken(world: ReviewWorld) -> None:
    from django.db import connection

    from portal.audit import seal

    campaign = services.review_campaign_start(partner=world.partner)
    seal()  # a sealed event is what a tamperer would have to alter (until then the trigger alone guards it)
    event = AuditEvent.objects.filter(at__gte=campaign.period_start).order_by("seq")[1]
    with connection.cursor() as cursor:
        # The table refuses UPDATE (append-only trigger): a tamperer with owner rights disables it first
        # (rolled back with the test's transaction). Django's deferred foreign-key checks must run first.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE portal_auditevent DISABLE TRIGGER porte_audit_append_only")
        cursor.execute("""UPDATE portal_auditevent SET data = '{"x": 1}'::jsonb WHERE id = %s""", [event.pk])
    assert report.audit_range(campaign).verdict == f"CHAIN BROKEN at event {event.pk}"
    assert ReviewItem.objects.filter(campaign=campaign).count() == 9


def test_a_deadline_run_that_died_halfway_is_finished_once(world: ReviewWorld) -> None:
    campaign = services.review_campaign_start(partner=world.partner)
    first_three = list(campaign.items.order_by("id").values_list("pk", flat=True)[:3])
    # A run that died after settling three items (each committed on its own), before closing the campaign.
    for item_id in first_three:
        services._settle_at_deadline(item_id, campaign.deadline)
    campaign.refresh_from_db()
    assert campaign.status == ReviewCampaign.Status.OPEN
    assert services.review_deadlines_enforce(now=campaign.deadline) == 6
    assert services.review_deadlines_enforce(now=campaign.deadline) == 0
    settled = AuditEvent.objects.filter(action="review.deadline_passed").values_list("object_id", flat=True)
    assert sorted(settled) == sorted(str(pk) for pk in campaign.items.values_list("pk", flat=True))
    assert AuditEvent.objects.filter(action="review.closed").count() == 1
    assert Notification.objects.filter(event="review.closed").count() == 1


def test_history_outlives_the_access_and_the_partner(world: ReviewWorld) -> None:
    from grants.services import revocation

    campaign = services.review_campaign_start(partner=world.partner)
    services.review_deadlines_enforce(now=campaign.deadline)
    revocation.partner_offboard(partner=world.partner, reason="contract ended")
    purge_broker()
    campaign.refresh_from_db()
    assert (
        campaign.items.count() == 9
        and campaign.items.filter(role__isnull=False, eligibility__isnull=True).count() == 4
    )
    text = report.report_csv(campaign)
    assert "IdP group engineers may request Read-only" in text and "chain verified" in text
    with pytest.raises(Exception, match="protected"):
        world.ops.delete()  # a role named by review items cannot be deleted


def test_beat_runs_the_review_tick(world: ReviewWorld) -> None:
    from portal.celery import app
    from reviews import tasks

    entry = app.conf.beat_schedule["access-reviews"]
    assert entry["task"] == "reviews.tasks.reviews_tick" and entry["task"] in app.tasks
    campaign = services.review_campaign_start(partner=world.partner)
    with time_machine.travel(campaign.deadline + timedelta(seconds=1), tick=False):
        assert tasks.reviews_tick() == {"started": 0, "reminded": 0, "settled": 9}
    campaign.refresh_from_db()
    assert campaign.status == ReviewCampaign.Status.CLOSED
