"""Notifications outbox: stored with the change, delivered once per channel, retried, never lost, never leaking
the webhook URL. Email goes through Django's test mail outbox (locmem backend); the webhook is a real HTTP
server on loopback."""

from __future__ import annotations

import pytest
from django.core import mail
from django.db import transaction

from portal import notifications
from portal.models import Notification
from tests.peers.webhook import WebhookSink

pytestmark = pytest.mark.django_db(transaction=True)


def _notify(**kwargs: object) -> Notification | None:
    with transaction.atomic():
        return notifications.notify(event="test.event", subject="Access approved", body="Line one", **kwargs)


def test_delivered_by_email_and_webhook_once(hook: WebhookSink) -> None:
    notification = _notify(recipients=["Bob@Acme.example", "bob@acme.example", ""], webhook_url=hook.url)
    assert notification is not None and notification.recipients == ["bob@acme.example"]
    notifications.notification_deliver(notification_id=notification.pk)
    assert [m.to for m in mail.outbox] == [["bob@acme.example"]]
    assert mail.outbox[0].subject == "[Porte] Access approved"
    assert hook.bodies == [{"text": "*Access approved*\nLine one"}]
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT and notification.attempts == 1
    # A duplicate delivery (replayed task) sends nothing more.
    assert notifications.notification_deliver(notification_id=notification.pk) is None
    assert len(mail.outbox) == 1 and len(hook.bodies) == 1


def test_failed_webhook_is_retried_without_resending_the_email(hook: WebhookSink) -> None:
    hook.status = 500
    notification = _notify(recipients=["bob@acme.example"], webhook_url=hook.url)
    assert notification is not None
    with pytest.raises(notifications.DeliveryFailed) as failure:
        notifications.notification_deliver(notification_id=notification.pk)
    assert "HTTP 500" in str(failure.value) and "secret-token" not in str(failure.value)
    notification.refresh_from_db()
    assert notification.status == Notification.Status.PENDING and notification.email_sent_at is not None
    assert "secret-token" not in notification.last_error
    hook.status = 204
    notifications.notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == Notification.Status.SENT and notification.attempts == 2
    assert len(mail.outbox) == 1 and len(hook.bodies) == 2


def test_unreachable_webhook_gives_up_after_the_last_attempt() -> None:
    notification = _notify(webhook_url="http://127.0.0.1:9/secret-token-456")
    assert notification is not None
    for _ in range(notifications.MAX_ATTEMPTS - 1):
        with pytest.raises(notifications.DeliveryFailed):
            notifications.notification_deliver(notification_id=notification.pk)
    notifications.notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == Notification.Status.FAILED
    assert notification.last_error == "webhook: ConnectionError"


def test_rolled_back_change_sends_nothing_and_nobody_to_tell_stores_nothing() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        notifications.notify(event="x", subject="s", body="b", recipients=["a@b.example"])
        raise RuntimeError("the change failed")
    assert not Notification.objects.exists()
    assert _notify(recipients=["", "not-an-address"]) is None
    assert not Notification.objects.exists()


def test_redrive_requeues_only_old_pending_notices() -> None:
    from datetime import timedelta

    from django.utils import timezone

    old = _notify(recipients=["a@b.example"])
    new = _notify(recipients=["c@d.example"])
    assert old is not None and new is not None
    Notification.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    assert notifications.notifications_redrive() == [old.pk]
