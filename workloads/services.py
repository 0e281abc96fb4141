"""Registering, approving and disabling a partner's pipelines. A partner admin (or staff) registers one; a staff
member who did not register it approves it (four eyes: a pipeline holds a role without anyone asking each time);
disabling it (or ending its place: reviews, suspension, offboarding) revokes its open grant with the deny."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from grants.models import Role
from grants.services.revocation import membership_revoke
from partners.models import Membership, Partner
from portal.access import actor_of
from portal.audit import audit_record
from portal.models import User
from workloads.models import MAX_SPAN, MIN_SPAN, Workload

MAX_CLAIMS = 10
_CLAIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
# Claims Porte checks itself (pinned issuer and audience, times, replay): not the workload's to set.
_RESERVED = {"iss", "aud", "exp", "iat", "nbf", "jti"}
# Pattern characters are refused rather than taken literally: a value that looks like a wildcard is a mistake.
_PATTERN = re.compile(r"[*?\[\]]")


def _checked(
    *, partner: Partner, role: Role, issuer: str, audience: str, claims: Any, span: timedelta
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if role.partner_id != partner.pk:
        errors["role"] = "No such role for this partner."
    parts = urlsplit(issuer)
    if (parts.scheme != "https" and (settings.PRODUCTION or parts.scheme != "http")) or not parts.hostname:
        errors["issuer"] = (
            "The issuer is the CI's OIDC issuer URL, e.g. https://token.actions.githubusercontent.com."
        )
    if not audience.strip() or len(audience) > 255:
        errors["audience"] = "Name the audience the pipeline asks its CI for (e.g. Porte's URL)."
    if not isinstance(claims, dict) or not claims or len(claims) > MAX_CLAIMS:
        errors["claims"] = (
            f"Give 1 to {MAX_CLAIMS} claims the pipeline's token must carry, e.g. repository and environment."
        )
    else:
        for name, value in claims.items():
            if not isinstance(name, str) or not _CLAIM_NAME.match(name) or name in _RESERVED:
                errors["claims"] = f"“{str(name)[:64]}” is not a claim the workload can require."
            elif not isinstance(value, str) or not value or len(value) > 255 or _PATTERN.search(value):
                errors["claims"] = (
                    f"The claim “{name}” needs one exact value (no wildcards), at most 255 characters."
                )
    if not MIN_SPAN <= span <= min(MAX_SPAN, role.max_duration):
        errors["span"] = (
            f"Credentials last between {int(MIN_SPAN.total_seconds() // 60)} and "
            f"{int(min(MAX_SPAN, role.max_duration).total_seconds() // 60)} minutes."
        )
    if errors:
        raise ValidationError(errors)
    return {str(k): str(v) for k, v in claims.items()}


@transaction.atomic
def workload_register(
    *,
    partner: Partner,
    name: str,
    role: Role,
    issuer: str,
    audience: str,
    claims: Any,
    span: timedelta,
    actor: User,
) -> Workload:
    """A pipeline of `partner`, waiting for staff approval. Its own identity (a user with a workload place in the
    partner) is made now, so that everything it ever does is attributed to it."""
    who = actor_of(actor)
    if not (who.is_staff or (who.is_partner_admin and who.partner_id == partner.pk)):
        raise PermissionDenied("Only the partner's administrators and Porte staff register pipelines.")
    exact = _checked(partner=partner, role=role, issuer=issuer, audience=audience, claims=claims, span=span)
    if Workload.objects.filter(partner=partner, name=name).exists():
        raise ValidationError({"name": "This partner already has a pipeline with that name."})
    user = User(username=f"workload.{partner.slug}.{name}"[:150], first_name="Pipeline", last_name=name)
    user.set_unusable_password()
    user.save()
    Membership.objects.create(user=user, partner=partner, is_workload=True, groups=[])
    workload = Workload.objects.create(
        partner=partner,
        name=name,
        user=user,
        role=role,
        issuer=issuer,
        audience=audience.strip(),
        claims=exact,
        span=span,
        registered_by=actor,
    )
    audit_record(
        action="workload.registered",
        obj=workload,
        actor=actor,
        partner_id=partner.pk,
        data={
            "name": name,
            "role": role.slug,
            "issuer": issuer,
            "audience": workload.audience,
            "claims": exact,
        },
    )
    return workload


@transaction.atomic
def workload_approve(*, workload: Workload, actor: User) -> Workload:
    workload = Workload.objects.select_for_update().get(pk=workload.pk)
    if not actor_of(actor).is_staff:
        raise PermissionDenied("Only Porte staff approve pipelines.")
    if workload.registered_by_id == actor.pk:
        raise ValidationError({"approved_by": "Another staff member must approve a pipeline you registered."})
    if workload.status != Workload.Status.PENDING:
        raise ValidationError({"status": "Only a pipeline waiting for approval can be approved."})
    workload.status, workload.approved_by, workload.approved_at = (
        Workload.Status.ACTIVE,
        actor,
        timezone.now(),
    )
    workload.save(update_fields=["status", "approved_by", "approved_at"])
    audit_record(
        action="workload.approved", obj=workload, actor=actor, partner_id=workload.partner_id, data={}
    )
    return workload


@transaction.atomic
def workload_disable(*, workload: Workload, reason: str, actor: User | None) -> Workload:
    """For good: its place ends (its open grant is revoked with the deny); a new pipeline is registered anew."""
    workload = Workload.objects.select_for_update().get(pk=workload.pk)
    if workload.status == Workload.Status.DISABLED:
        return workload
    workload.status = Workload.Status.DISABLED
    workload.save(update_fields=["status"])
    membership_revoke(
        membership_id=workload.user.membership.pk, reason=f"pipeline disabled: {reason}", actor=actor
    )
    audit_record(
        action="workload.disabled",
        obj=workload,
        actor=actor,
        partner_id=workload.partner_id,
        data={"reason": reason},
    )
    return workload
