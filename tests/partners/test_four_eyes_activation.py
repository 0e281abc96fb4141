"""A sensitive partner is activated by two staff members: the first one's activation is an approval, a second,
different one activates; each activation needs a new pair."""

from __future__ import annotations

import pytest
from django.test import Client

from partners import services as partner_services
from partners.models import Partner
from portal.models import AuditEvent
from tests.fixtures.domain import make_staff, sign_in_as

pytestmark = pytest.mark.django_db

REASON = {"exception_reason": "Pilot: account and IdP test next week"}


def test_two_staff_members_activate_a_sensitive_partner() -> None:
    sam, sue = make_staff("sam"), make_staff("sue")
    staff = sign_in_as(Client(), sam)
    created = staff.post(
        "/staff/partners/new/",
        {
            "name": "Umbrella",
            "slug": "umbrella",
            "domains": "umbrella.example",
            "sponsor": sam.pk,
            "aws_region": "eu-west-1",
            "enforce_email_domains": "on",
            "sensitive": "on",
        },
    )
    assert created.status_code == 302
    partner = Partner.objects.get(slug="umbrella")
    assert partner.sensitive

    first = staff.post("/staff/partners/umbrella/activate/", REASON, follow=True)
    assert "Your approval is recorded: a second staff member activates Umbrella." in first.content.decode()
    partner.refresh_from_db()
    assert partner.status == Partner.Status.ONBOARDING and partner.activation_approved_by == sam

    again = staff.post("/staff/partners/umbrella/activate/", REASON)
    assert (
        again.status_code == 400
        and "You approved Umbrella&#x27;s activation already" in again.content.decode()
    )
    assert Partner.objects.get(pk=partner.pk).status == Partner.Status.ONBOARDING

    second = sign_in_as(Client(), sue)
    home = second.get("/staff/").content.decode()
    assert "Sensitive partners&#x27; activations awaiting a second person" in home
    assert second.post("/staff/partners/umbrella/activate/", REASON).status_code == 302
    partner.refresh_from_db()
    assert partner.status == Partner.Status.ACTIVE and partner.activation_approved_by is None
    approved = AuditEvent.objects.get(action="partner.activation_approved")
    assert approved.actor == sam and approved.data["reason"] == REASON["exception_reason"]
    assert AuditEvent.objects.get(action="partner.active").actor == sue

    # Suspended, then active again: a new pair of staff members.
    partner_services.partner_set_status(
        partner=partner, status=Partner.Status.SUSPENDED, reason="test", actor=sam
    )
    partner_services.partner_activate(partner=partner, actor=sue, exception_reason="back")
    assert Partner.objects.get(pk=partner.pk).status == Partner.Status.SUSPENDED
    partner_services.partner_activate(partner=partner, actor=sam, exception_reason="back")
    assert Partner.objects.get(pk=partner.pk).status == Partner.Status.ACTIVE


def test_a_partner_that_is_not_sensitive_is_activated_by_one() -> None:
    sam = make_staff("sam")
    partner = partner_services.partner_create(name="Acme", slug="acme", domains=["acme.example"])
    assert sign_in_as(Client(), sam).post("/staff/partners/acme/activate/", REASON).status_code == 302
    assert Partner.objects.get(pk=partner.pk).status == Partner.Status.ACTIVE
