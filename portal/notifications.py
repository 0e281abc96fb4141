"""Notifications: email (Django's mail backend) and an optional Slack-compatible webhook, through an outbox.

`notify()` stores a `Notification` in the caller's transaction and queues its delivery on commit. Delivery is
at-least-once: each channel is marked when it succeeds, so a retry after a partial failure does not repeat the
channel that already went out. Messages are plain text built by the caller; no secret may be put in one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from portal import queue
from portal.models import Notification, User

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 5
MAX_ATTEMPTS = 8


class DeliveryFailed(Exception):
    """A channel could not be delivered now; the message says which and why (never the webhook URL)."""


def _addresses(recipients: Iterable[User | str]) -> list[str]:
    seen: dict[str, None] = {}
    for recipient in recipients:
        address = recipient if isinstance(recipient, str) else recipient.email
        if address and "@" in address:
            seen.setdefault(address.strip().lower(), None)
    return list(seen)


def staff_addresses() -> list[str]:
    """Everyone who should hear about security events: active staff with an email address."""
    return _addresses(User.objects.filter(is_staff=True, is_active=True).exclude(email=""))


def notify(
    *,
    event: str,
    subject: str,
    body: str,
    recipients: Iterable[User | str] = (),
    webhook_url: str = "",
    partner_id: int | None = None,
) -> Notification | None:
    """Store a notice and deliver it after commit. Nothing is stored when there is nobody to tell."""
    addresses = _addresses(recipients)
    if not addresses and not webhook_url:
        return None
    notification = Notification.objects.create(
        event=event,
        subject=subject[:200],
        body=body,
        recipients=addresses,
        webhook_url=webhook_url,
        partner_id=partner_id,
    )
    queue.on_commit("portal.tasks.notification_deliver", notification.pk)
    return notification


def notification_deliver(*, notification_id: int) -> Notification | None:
    """Send what is still unsent of one notice. Raises DeliveryFailed (the task retries) while attempts remain."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(of=("self",), no_key=True, skip_locked=True)
            .filter(pk=notification_id, status=Notification.Status.PENDING)
            .first()
        )
        if notification is None:
            return None  # delivered already, given up, or being delivered by another worker right now
        errors: list[str] = []
        now = timezone.now()
        if notification.recipients and notification.email_sent_at is None:
            try:
                send_mail(
                    subject=f"[Porte] {notification.subject}",
                    message=notification.body,
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    recipient_list=notification.recipients,
                )
                notification.email_sent_at = now
            except Exception as exc:  # any backend error: SMTP, socket, DNS
                errors.append(f"email: {type(exc).__name__}: {exc}"[:500])
        if notification.webhook_url and notification.webhook_sent_at is None:
            try:
                _post_webhook(notification)
                notification.webhook_sent_at = now
            except DeliveryFailed as exc:
                errors.append(str(exc))
        notification.attempts += 1
        notification.last_error = "\n".join(errors)
        if not errors:
            notification.status = Notification.Status.SENT
            notification.sent_at = now
        elif notification.attempts >= MAX_ATTEMPTS:
            notification.status = Notification.Status.FAILED
            log.warning("notification %s (%s) given up: %s", notification.pk, notification.event, errors)
        notification.save()
    if errors and notification.status == Notification.Status.PENDING:
        raise DeliveryFailed("; ".join(errors))
    return notification


def _post_webhook(notification: Notification) -> None:
    payload = {"text": f"*{notification.subject}*\n{notification.body}"}
    try:
        response = requests.post(
            notification.webhook_url,
            json=payload,
            timeout=WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        # The exception text can include the URL (a secret): report only its type.
        raise DeliveryFailed(f"webhook: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"webhook: HTTP {response.status_code}")


def notifications_redrive(*, older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    """Queue again the notices still pending a while after they were stored (lost task, worker down)."""
    cutoff = timezone.now() - older_than
    ids = list(
        Notification.objects.filter(status=Notification.Status.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:500]
    )
    for notification_id in ids:
        queue.send("portal.tasks.notification_deliver", notification_id)
    return ids
