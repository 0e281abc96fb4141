"""Personas for approvals: Acme's partner admin (Pat), a second staff member (Sue), staff with email addresses,
and a webhook receiver on loopback."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from approvals.models import ApprovalPolicy
from grants.models import Role
from portal import notifications
from portal.models import Notification, User
from tests.fixtures.domain import World, make_member, make_staff, sign_in_as


def client_for(user: User, **defaults: str) -> Client:
    client = Client(**defaults)
    sign_in_as(client, user)
    return client


@pytest.fixture
def sam(staff: User) -> User:
    User.objects.filter(pk=staff.pk).update(email="sam@porte.example")
    staff.refresh_from_db()
    return staff


@pytest.fixture
def sue(db) -> User:  # type: ignore[no-untyped-def]
    """A second Porte staff member (four-eyes, N-of-M)."""
    user = make_staff("sue")
    User.objects.filter(pk=user.pk).update(email="sue@porte.example")
    user.refresh_from_db()
    return user


@pytest.fixture
def pat(acme: World) -> User:
    """Acme's partner admin (also an engineer, so eligible for the read-only role)."""
    return make_member(acme.partner, "pat", partner_admin=True)


def set_policy(role: Role, **fields: object) -> ApprovalPolicy:
    policy, _ = ApprovalPolicy.objects.update_or_create(role=role, defaults=fields)
    return policy


def deliver(event: str) -> list[Notification]:
    """Deliver (as the worker would) every stored notice of `event`; returns them."""
    found = list(Notification.objects.filter(event=event).order_by("id"))
    for notice in found:
        notifications.notification_deliver(notification_id=notice.pk)
    return found


def mails_to(address: str) -> list[str]:
    return [m.subject for m in mail.outbox if address in m.to]
