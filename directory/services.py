"""Business actions of a partner's directory (SCIM): its token, the people it provisions and deprovisions, its
groups. Each writes its audit event in its own transaction; deprovisioning goes through the grant side's
revocation (sessions, tokens and open grants end, the deny is put on commit)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from allauth.socialaccount.models import SocialAccount
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from directory.models import DirectoryConnection, DirectoryGroup
from grants.services.revocation import membership_groups_change, membership_revoke
from partners.models import IdentityProvider, Membership, Partner
from partners.services import partner_username
from portal.audit import audit_record
from portal.models import User
from portal.services import api_token_hash, token_parts

TOKEN_PATTERN = re.compile(r"^porte_scim_([a-z0-9]{8})_([A-Za-z0-9]{40})$")
DEACTIVATED = "deactivated in the partner's directory"


class DirectoryConflict(Exception):
    """The directory names a person or group twice (SCIM 409 uniqueness)."""


@dataclass(frozen=True)
class PersonRecord:
    """What the directory says of a person (checked by directory.scim before it gets here)."""

    user_name: str
    external_id: str
    given_name: str = ""
    family_name: str = ""
    email: str = ""
    active: bool = True


@dataclass(frozen=True)
class GroupRecord:
    display_name: str
    external_id: str = ""
    member_ids: tuple[str, ...] = ()


# --- the token ------------------------------------------------------------------------------------------------


@transaction.atomic
def directory_token_rotate(*, partner: Partner, actor: User) -> tuple[DirectoryConnection, str]:
    """Make the partner's SCIM token (replacing any earlier one, which stops working at once) and return it with
    the token string, which exists only in this return value: show it once, never store or log it."""
    if partner.status == Partner.Status.OFFBOARDED:
        raise ValidationError("An offboarded partner has no directory.")
    connection, _ = DirectoryConnection.objects.select_for_update().get_or_create(partner=partner)
    replaced = connection.token_prefix if connection.is_on else None
    prefix, secret = token_parts()
    connection.token_prefix, connection.token_hash = prefix, api_token_hash(secret)
    connection.token_created_at, connection.token_created_by = timezone.now(), actor
    connection.last_used_at = None
    connection.save()
    audit_record(
        action="directory.token_created",
        obj=connection,
        actor=actor,
        partner_id=partner.pk,
        data={"prefix": prefix, "replaced": replaced},
    )
    return connection, f"porte_scim_{prefix}_{secret}"


@transaction.atomic
def directory_turn_off(*, partner: Partner, actor: User | None, reason: str) -> None:
    """Refuse the partner's directory from now on (its token stops working). People and groups stay."""
    connection = DirectoryConnection.objects.select_for_update().filter(partner=partner).first()
    if connection is None or not connection.is_on:
        return
    prefix = connection.token_prefix
    connection.token_prefix, connection.token_hash = "", ""
    connection.save(update_fields=["token_prefix", "token_hash"])
    audit_record(
        action="directory.turned_off",
        obj=connection,
        actor=actor,
        partner_id=partner.pk,
        data={"prefix": prefix, "reason": reason},
    )


# --- people ---------------------------------------------------------------------------------------------------


def _identity_provider(partner: Partner) -> IdentityProvider:
    idp = IdentityProvider.objects.filter(partner=partner).first()
    if idp is None:
        raise ValidationError(
            {
                "externalId": "The partner has no identity provider in Porte yet: register it before provisioning."
            }
        )
    return idp


def _check_user_name(partner_id: int, user_name: str, membership_id: int | None) -> None:
    taken = Membership.objects.filter(
        partner_id=partner_id, scim_id__isnull=False, scim_user_name__iexact=user_name
    )
    if membership_id is not None:
        taken = taken.exclude(pk=membership_id)
    if taken.exists():
        raise DirectoryConflict(f"userName “{user_name}” is already taken by another user.")


def _apply_names(user: User, record: PersonRecord, *, keep_unsaid: bool = False) -> None:
    """The directory's name and e-mail for the person; with `keep_unsaid`, what it does not say is kept (a person
    adopted from their sign-ins keeps the name and address their IdP gave)."""
    if record.given_name or record.family_name or not keep_unsaid:
        user.first_name, user.last_name = record.given_name[:150], record.family_name[:150]
    if record.email or not keep_unsaid:
        user.email = record.email


@transaction.atomic
def directory_user_provision(*, connection: DirectoryConnection, record: PersonRecord) -> Membership:
    """The directory names a person. Their identity is (the partner's IdP, externalId): a person who already
    signed in with that subject is adopted, anyone else gets their place now and signs in later through the IdP.
    Provisioning someone inactive records them without access."""
    # No lock on the partner: concurrent provisioning of the same name or subject meets the unique constraints.
    partner = connection.partner
    idp = _identity_provider(partner)
    _check_user_name(partner.pk, record.user_name, None)
    membership = (
        Membership.objects.select_for_update(of=("self",), no_key=True)
        .select_related("user")
        .filter(
            partner=partner,
            user__socialaccount__provider=idp.provider_id,
            user__socialaccount__uid=record.external_id,
        )
        .first()
    )
    adopted = membership is not None
    if membership is not None:
        if membership.scim_id is not None:
            raise DirectoryConflict("A user with this externalId already exists.")
        _apply_names(membership.user, record, keep_unsaid=True)
        membership.user.save(update_fields=["first_name", "last_name", "email"])
    else:
        user = User(username=partner_username(provider_id=idp.provider_id, subject=record.external_id))
        user.set_unusable_password()
        _apply_names(user, record)
        user.save()
        SocialAccount.objects.create(user=user, provider=idp.provider_id, uid=record.external_id)
        membership = Membership.objects.create(user=user, partner=partner, identity_provider=idp, groups=[])
    membership.scim_id = uuid.uuid4()
    membership.scim_user_name, membership.scim_external_id = record.user_name, record.external_id
    membership.save(update_fields=["scim_id", "scim_user_name", "scim_external_id"])
    audit_record(
        action="membership.provisioned",
        obj=membership,
        partner_id=partner.pk,
        data={"user_name": record.user_name, "adopted": adopted, "active": record.active},
    )
    _follow_active(membership, record.active)
    return membership


@transaction.atomic
def directory_user_update(*, membership: Membership, record: PersonRecord) -> Membership:
    """The directory's whole view of a person (PUT, or PATCH applied to what Porte holds). Deactivation ends their
    place, sessions, tokens and open grants; reactivation re-opens a place only the directory had closed."""
    membership = (
        Membership.objects.select_for_update(of=("self",), no_key=True)
        .select_related("user")
        .get(pk=membership.pk)
    )
    if record.external_id != membership.scim_external_id:
        raise ValidationError(
            {"externalId": "externalId is the person's subject at the identity provider: it cannot change."}
        )
    _check_user_name(membership.partner_id, record.user_name, membership.pk)
    user = membership.user
    before = (membership.scim_user_name, user.first_name, user.last_name, user.email)
    _apply_names(user, record)
    user.save(update_fields=["first_name", "last_name", "email"])
    membership.scim_user_name = record.user_name
    membership.save(update_fields=["scim_user_name"])
    after = (membership.scim_user_name, user.first_name, user.last_name, user.email)
    if before != after:
        audit_record(
            action="membership.directory_updated",
            obj=membership,
            partner_id=membership.partner_id,
            data={"user_name": record.user_name},
        )
    _follow_active(membership, record.active)
    membership.refresh_from_db()
    return membership


def _follow_active(membership: Membership, active: bool) -> None:
    if not active and membership.is_active:
        membership_revoke(membership_id=membership.pk, reason=DEACTIVATED)
        Membership.objects.filter(pk=membership.pk).update(ended_by_directory=True)
    elif active and not membership.is_active and membership.ended_by_directory:
        Membership.objects.filter(pk=membership.pk).update(is_active=True, ended_by_directory=False)
        audit_record(
            action="membership.reopened",
            obj=membership,
            partner_id=membership.partner_id,
            data={"reason": "reactivated in the partner's directory"},
        )


@transaction.atomic
def directory_user_delete(*, membership: Membership) -> None:
    """The directory forgot the person: their place ends as on deactivation, they leave its groups, and they are
    no longer one of its resources. The membership stays for history; provisioning the same externalId again
    adopts it."""
    # Its group rows go before its membership row is locked: group changes take them in that order too.
    left = list(membership.directory_groups.values_list("display_name", flat=True))
    DirectoryGroup.members.through.objects.filter(membership_id=membership.pk).delete()
    membership = Membership.objects.select_for_update(of=("self",), no_key=True).get(pk=membership.pk)
    _follow_active(membership, active=False)
    Membership.objects.filter(pk=membership.pk).update(scim_id=None, scim_user_name="")
    audit_record(
        action="membership.deprovisioned",
        obj=membership,
        partner_id=membership.partner_id,
        data={"user_name": membership.scim_user_name, "left_groups": sorted(left)},
    )
    _groups_follow([membership.pk])


# --- groups ---------------------------------------------------------------------------------------------------


def _members(partner_id: int, member_ids: Iterable[str]) -> list[Membership]:
    wanted: set[uuid.UUID] = set()
    for value in member_ids:
        try:
            wanted.add(uuid.UUID(str(value)))
        except ValueError:
            raise ValidationError({"members": f"No user with id “{str(value)[:64]}”."}) from None
    found = list(Membership.objects.filter(partner_id=partner_id, scim_id__in=wanted).order_by("pk"))
    missing = wanted - {m.scim_id for m in found}
    if missing:
        # The same answer for a user of another partner as for one that does not exist.
        raise ValidationError({"members": f"No user with id “{sorted(map(str, missing))[0]}”."})
    return found


def _check_group_name(partner_id: int, display_name: str, group_id: int | None) -> None:
    taken = DirectoryGroup.objects.filter(partner_id=partner_id, display_name=display_name)
    if group_id is not None:
        taken = taken.exclude(pk=group_id)
    if taken.exists():
        raise DirectoryConflict(f"A group named “{display_name}” already exists.")


def _groups_follow(membership_ids: Iterable[int]) -> None:
    """Each person's groups are the names of the directory groups they are in; what a lost group allowed ends."""
    for membership_id in sorted(set(membership_ids)):
        names = DirectoryGroup.objects.filter(members__pk=membership_id).values_list(
            "display_name", flat=True
        )
        membership_groups_change(
            membership_id=membership_id, groups=list(names), reason="group change in the partner's directory"
        )


def _groups_from_directory(partner_id: int) -> None:
    """From the first group on, the directory is where the partner's people's groups come from."""
    changed = IdentityProvider.objects.filter(partner_id=partner_id, groups_from_directory=False).update(
        groups_from_directory=True
    )
    if changed:
        audit_record(
            action="identity_provider.groups_from_directory",
            obj=IdentityProvider.objects.get(partner_id=partner_id),
            partner_id=partner_id,
            data={},
        )


@transaction.atomic
def directory_group_create(*, connection: DirectoryConnection, record: GroupRecord) -> DirectoryGroup:
    partner = connection.partner
    _check_group_name(partner.pk, record.display_name, None)
    members = _members(partner.pk, record.member_ids)
    group = DirectoryGroup.objects.create(
        partner=partner, display_name=record.display_name, scim_external_id=record.external_id
    )
    group.members.set(members)
    audit_record(
        action="directory.group_created",
        obj=group,
        partner_id=partner.pk,
        data={"name": group.display_name, "members": len(members)},
    )
    _groups_from_directory(partner.pk)
    _groups_follow(m.pk for m in members)
    return group


@transaction.atomic
def directory_group_update(*, group: DirectoryGroup, record: GroupRecord) -> DirectoryGroup:
    """The group's whole state (PUT, or PATCH applied to what Porte holds): a new name or a member who left
    changes what its members are eligible for at once."""
    group = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
    _check_group_name(group.partner_id, record.display_name, group.pk)
    members = _members(group.partner_id, record.member_ids)
    before = {m.pk for m in group.members.all()}
    after = {m.pk for m in members}
    renamed = group.display_name != record.display_name
    group.display_name, group.scim_external_id = record.display_name, record.external_id
    group.save()
    group.members.set(members)
    if renamed or before != after:
        audit_record(
            action="directory.group_changed",
            obj=group,
            partner_id=group.partner_id,
            data={"name": group.display_name, "joined": len(after - before), "left": len(before - after)},
        )
    _groups_follow((before | after) if renamed else (before ^ after))
    return group


@transaction.atomic
def directory_group_delete(*, group: DirectoryGroup) -> None:
    group = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
    members = list(group.members.values_list("pk", flat=True))
    audit_record(
        action="directory.group_deleted",
        obj=group,
        partner_id=group.partner_id,
        data={"name": group.display_name, "members": len(members)},
    )
    group.delete()
    _groups_follow(members)
