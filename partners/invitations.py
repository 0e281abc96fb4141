"""Self-service onboarding: staff invite a partner's IT contact, who sets up the partner's identity provider.

1. Staff invite the contact by e-mail (`invitation_create`, then `invitation_send`): a single-use link, valid
   INVITATION_DAYS, to a partner still onboarding. A new invitation withdraws the partner's earlier ones. Only
   the token's digest is stored; the link travels in the e-mail alone.
2. The contact opens the link and confirms (`invitation_claim`: a page view alone never uses it up, so that mail
   scanners following links do not). The link is then spent: this browser's session holds the invitation
   (portal.access.INVITATION_SESSION_KEY), the audience `invited` of the onboarding pages.
3. In that session, the contact registers the IdP (OIDC discovery or SAML metadata, validated as staff's are),
   copies Porte's SP details into it, runs a test sign-in with their own account, reads the claims it asserted
   and fixes the mapping (a changed mapping needs a new test), then hands it in (`invitation_submit`).
4. Staff review it on the partner's page and activate the partner (partners.services.partner_activate).

Every step is audited with the invitation's id and the contact's address. Nothing here talks to the network
inside a transaction: the IdP is fetched by the forms before, and the e-mail is sent after commit.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from partners.models import IdentityProvider, Partner, PartnerInvitation
from portal.access import INVITATION_SESSION_KEY, invitation_marker
from portal.audit import audit_record
from portal.models import User
from portal.notifications import notify, staff_addresses

INVITATION_DAYS = 7
log = logging.getLogger(__name__)


class InvitationUnusable(Exception):
    """The link cannot be used; the message says why, in words for the person holding it."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_link(token: str) -> str:
    return f"{settings.PUBLIC_URL}{reverse('invitation_open', args=[token])}"


@transaction.atomic
def invitation_create(*, partner: Partner, email: str, actor: User) -> tuple[PartnerInvitation, str]:
    """Invite `email` to onboard `partner`'s IdP; the earlier open invitations are withdrawn. Returns the
    invitation and its token (for `invitation_send`'s e-mail; never stored)."""
    partner = Partner.objects.select_for_update(of=("self",), no_key=True).get(pk=partner.pk)
    if partner.status != Partner.Status.ONBOARDING:
        raise ValidationError(
            {
                "email": f"{partner.name} is {partner.get_status_display().lower()}: only a "
                "partner still onboarding can be invited to set up its IdP."
            }
        )
    now = timezone.now()
    # A new invitation is a new attempt: earlier ones stop working, handed in or not.
    withdrawn = partner.invitations.filter(revoked_at__isnull=True, expires_at__gt=now)
    for earlier in withdrawn:
        audit_record(
            action="invitation.withdrawn",
            obj=earlier,
            actor=actor,
            partner_id=partner.pk,
            data={"email": earlier.email, "reason": "a new invitation was sent"},
        )
    withdrawn.update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = PartnerInvitation.objects.create(
        partner=partner,
        email=email,
        token_digest=_digest(token),
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(days=INVITATION_DAYS),
    )
    audit_record(
        action="invitation.created",
        obj=invitation,
        actor=actor,
        partner_id=partner.pk,
        data={"email": email, "expires_at": invitation.expires_at.isoformat()},
    )
    return invitation, token


def invitation_send(invitation: PartnerInvitation, token: str) -> str:
    """E-mail the link to the contact, once the invitation is committed: "" when sent, else what went wrong
    (recorded; staff can send a new invitation). Sent as it is, not kept as a stored notification: the link is
    the credential, and only its digest is kept."""
    link = invitation_link(token)
    try:
        _send(invitation, link)
    except (
        Exception
    ) as exc:  # SMTP refusals, connection errors: said to staff, recorded, never a server error
        problem = f"{type(exc).__name__}: {exc}"[:300]
        log.warning("invitation %s: the e-mail to %s failed: %s", invitation.pk, invitation.email, problem)
        with transaction.atomic():
            audit_step(invitation, "invitation.mail_failed", problem=problem)
        return problem
    return ""


def _send(invitation: PartnerInvitation, link: str) -> None:
    send_mail(
        subject=f"Set up {invitation.partner.name}'s sign-in to Porte",
        message=(
            f"{invitation.created_by.display_name if invitation.created_by else 'Porte staff'} invites you to "
            f"connect {invitation.partner.name}'s identity provider to Porte, so that your colleagues can sign in "
            f"to AWS access through it.\n\nOpen this link (it works once, in one browser, until "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n\n{link}\n\nYou will register your IdP, copy Porte's "
            "details into it, test it with your own account, and hand it in for review."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


def invitation_peek(token: str) -> PartnerInvitation:
    """The invitation a link names, if it can still be opened (nothing changes). Raises InvitationUnusable."""
    invitation = (
        PartnerInvitation.objects.select_related("partner").filter(token_digest=_digest(token)).first()
    )
    if invitation is None:
        raise InvitationUnusable("This link is not a Porte invitation (check it was copied whole).")
    if invitation.claimed_at is not None:
        raise InvitationUnusable("This invitation was opened already: it works once, in one browser.")
    if not invitation.is_open:
        raise InvitationUnusable(f"This invitation is {invitation.state}.")
    return invitation


def invitation_claim(request: HttpRequest, token: str) -> PartnerInvitation:
    """Open the invitation in this browser: the link is spent, and this session holds the invitation."""
    with transaction.atomic():
        invitation = invitation_peek(token)
        claimed = PartnerInvitation.objects.filter(pk=invitation.pk, claimed_at__isnull=True).update(
            claimed_at=timezone.now()
        )
        if not claimed:  # another browser opened it meanwhile
            raise InvitationUnusable("This invitation was opened already: it works once, in one browser.")
        audit_record(
            action="invitation.opened",
            obj=invitation,
            partner_id=invitation.partner_id,
            data={"email": invitation.email},
        )
    request.session.cycle_key()
    request.session[INVITATION_SESSION_KEY] = {
        "id": invitation.pk,
        "partner_id": invitation.partner_id,
        "until": invitation.expires_at.timestamp(),
    }
    return invitation


def invitation_in_session(request: HttpRequest) -> PartnerInvitation | None:
    """The invitation this browser opened, if it is still open (else the session forgets it)."""
    marker = invitation_marker(request)
    invitation = (
        PartnerInvitation.objects.select_related("partner").filter(pk=marker["id"]).first()
        if marker
        else None
    )
    if invitation is None or not invitation.is_open or invitation.claimed_at is None:
        request.session.pop(INVITATION_SESSION_KEY, None)
        return None
    return invitation


def audit_step(invitation: PartnerInvitation, action: str, **data: object) -> None:
    """Record a step the contact took (inside the transaction of the change, when there is one)."""
    audit_record(
        action=action,
        obj=invitation,
        partner_id=invitation.partner_id,
        data={"email": invitation.email, **data},
    )


@transaction.atomic
def invitation_submit(*, invitation: PartnerInvitation) -> PartnerInvitation:
    """The contact hands the IdP in for staff's review: only once a test sign-in passed with its current
    configuration. Staff (the sponsor, else everyone) are told."""
    invitation = (
        PartnerInvitation.objects.select_for_update(of=("self",), no_key=True)
        .select_related("partner")
        .get(pk=invitation.pk)
    )
    idp = IdentityProvider.objects.filter(partner=invitation.partner, is_enabled=True).first()
    if idp is None or not idp.is_verified:
        raise ValidationError(
            "Run a test sign-in with the current settings first: it must pass before review."
        )
    if invitation.submitted_at is None:
        invitation.submitted_at = timezone.now()
        invitation.save(update_fields=["submitted_at"])
        audit_step(invitation, "invitation.submitted", idp=idp.provider_id)
        partner = invitation.partner
        notify(
            event="invitation.submitted",
            subject=f"{partner.name}'s identity provider is ready for review",
            body=f"{invitation.email} set up and tested {partner.name}'s IdP ({idp.get_protocol_display()}). "
            f"Review it and activate the partner: {settings.PUBLIC_URL}"
            f"{reverse('partner_detail', args=[partner.slug])}",
            recipients=[partner.sponsor] if partner.sponsor else staff_addresses(),
            partner_id=partner.pk,
        )
    return invitation
