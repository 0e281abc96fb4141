"""Who this person is in Porte, and what that lets them reach: the one scoping seam.

Every permission question in Porte starts from `actor_of(user)`:
- **standing** — a person acts only while everything that let them in still holds: the account is active; for a
  partner person, their membership, their partner and their partner's IdP; for staff, a second factor.
  `Actor.refusal` names the first thing that no longer holds (None: in standing). The gate (portal.gate) ends a
  session whose person lost standing, the API token class refuses their tokens, and services refuse them too.
- **place** — staff, or a member (optionally admin) of exactly one partner, or nobody.
- **scoping** — `scoped()` narrows any queryset to what the person may see; every `*_visible_to` calls it.

The membership belongs to the partners app: portal reads it by name (`user.membership`, loaded with the user by
portal.auth_backends) and imports no app.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest

from portal.models import ApiToken, User

# Why a person has no standing (recorded when their session is ended, shown to them in plain words).
MFA_NOT_SET_UP = "mfa_not_set_up"
REFUSAL_MESSAGES = {
    "user_inactive": "Your Porte account is disabled. Contact your organisation's Porte administrator.",
    "no_membership": "This account has no place in Porte.",
    "membership_ended": "Your place in your organisation's Porte access has ended.",
    "partner_inactive": "Your organisation's access to Porte is not active. Contact your Porte sponsor.",
    "idp_disabled": "Your organisation's identity provider is not enabled in Porte.",
    MFA_NOT_SET_UP: "Porte staff accounts need two-factor authentication: set it up to continue.",
    "mfa_not_satisfied": "Sign in again with your second factor.",
    "not_signed_in_by_idp": "Sign in through your organisation's identity provider.",
}

_ACTOR_CACHE = "_porte_actor"


@dataclass(frozen=True)
class Actor:
    """A person's place in Porte as of this request. Build it with `actor_of`."""

    user_id: int | None
    is_staff: bool = False
    partner_id: int | None = None
    is_partner_admin: bool = False
    groups: tuple[str, ...] = ()
    # The membership and partner rows (partners app), for pages that name them; None for staff and nobody.
    membership: Any = field(default=None, compare=False, repr=False)
    refusal: str | None = None

    @property
    def in_standing(self) -> bool:
        return self.user_id is not None and self.refusal is None

    @property
    def is_partner_member(self) -> bool:
        return self.partner_id is not None

    @property
    def partner(self) -> Any:
        return self.membership.partner if self.membership is not None else None

    @property
    def identity_provider(self) -> Any:
        return self.membership.identity_provider if self.membership is not None else None

    def may_see_partner(self, partner_id: int) -> bool:
        return self.is_staff or self.partner_id == partner_id


ANONYMOUS = Actor(user_id=None, refusal="anonymous")


def _has_second_factor(user: User) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def _standing_refusal(user: User) -> str | None:
    if not user.is_active:
        return "user_inactive"
    if user.is_staff:
        return None if _has_second_factor(user) else MFA_NOT_SET_UP
    membership = getattr(user, "membership", None)
    if membership is None:
        return "no_membership"
    if not membership.is_active:
        return "membership_ended"
    if membership.partner.status != "active":
        return "partner_inactive"
    if membership.is_workload:
        return None  # a pipeline: no IdP, no sessions (workloads.exchange authenticates it)
    idp = membership.identity_provider
    if idp is None or not idp.is_enabled or idp.partner_id != membership.partner_id:
        return "idp_disabled"
    return None


def actor_of(user: Any) -> Actor:
    """The person's place, computed once per user object (a request's `request.user`, a token's user)."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    cached = user.__dict__.get(_ACTOR_CACHE)
    if cached is not None:
        return cast(Actor, cached)
    refusal = _standing_refusal(user)
    membership: Any = getattr(user, "membership", None) if not user.is_staff else None
    if refusal is not None:
        actor = Actor(user_id=user.pk, refusal=refusal)
    elif user.is_staff:
        actor = Actor(user_id=user.pk, is_staff=True)
    else:
        actor = Actor(
            user_id=user.pk,
            partner_id=membership.partner_id,
            is_partner_admin=membership.is_partner_admin,
            groups=tuple(membership.groups or ()),
            membership=membership,
        )
    user.__dict__[_ACTOR_CACHE] = actor
    return actor


def forget_actor(user: Any) -> None:
    """Drop the cached place (after a change to the person's membership within the same request)."""
    if user is not None:
        user.__dict__.pop(_ACTOR_CACHE, None)


M = TypeVar("M", bound=Model)


def scoped(
    queryset: QuerySet[M],
    user: Any,
    *,
    partner: str,
    owner: str | None,
    admin_sees: Q | None = None,
    member_sees: Q | None = None,
) -> QuerySet[M]:
    """What of `queryset` the person may see: staff everything; a partner admin their partner's rows (`partner`
    is the lookup of the row's partner id), narrowed by `admin_sees`; a member their own (`owner` is the lookup of
    the row's user id) or what `member_sees` adds; anybody else nothing."""
    actor = actor_of(user)
    if actor.is_staff:
        return queryset
    if not actor.in_standing or actor.partner_id is None:
        return queryset.none()
    in_partner = queryset.filter(**{partner: actor.partner_id})
    if actor.is_partner_admin:
        return in_partner.filter(admin_sees) if admin_sees is not None else in_partner
    own = Q(**{owner: actor.user_id}) if owner else Q(pk__in=[])
    return in_partner.filter(own | member_sees if member_sees is not None else own)


def found_or_404(obj: M | None, what: str = "object") -> M:
    """Missing and forbidden answer alike."""
    if obj is None:
        raise Http404(f"No such {what}.")
    return obj


# --- who may reach a view: its audience, declared where the view is defined; portal.gate enforces it ----------


class Audience:
    PUBLIC = "public"  # anyone: health, the sign-in page, the IdP protocol endpoints
    SIGNED_IN = "signed_in"  # any person in standing (staff or partner)
    PARTNER = "partner"  # a partner person in standing
    PARTNER_ADMIN = "partner_admin"  # a partner admin in standing
    STAFF = "staff"  # Porte staff in standing (second factor set up and used)
    STAFF_ACCOUNT = "staff_account"  # a staff member's own local account (password, e-mail, second factor)
    STAFF_OR_ANONYMOUS = "staff_or_anonymous"  # password reset: visitors and staff, never partner people
    # a partner's IT contact who opened an onboarding invitation in this browser (partners/invitations.py), before
    # it expires; the views check the invitation itself (withdrawn, used up, the partner's state)
    INVITED = "invited"
    API = "api"  # REST API: its authentication and permission classes decide; the gate checks standing
    # a partner's directory (SCIM client) with the partner's SCIM token, which the view checks; never a person
    DIRECTORY = "directory"
    CLOSED = "closed"  # nobody: 404


AUDIENCE_ATTRIBUTE = "porte_audience"
# Where a browser's opened invitation is kept in its session: {"id", "partner_id", "until" (epoch seconds)}.
INVITATION_SESSION_KEY = "porte_invitation"


def invitation_marker(request: HttpRequest) -> dict[str, Any] | None:
    """The invitation this browser opened, while it has not expired (partners.invitations checks the rest)."""
    marker = request.session.get(INVITATION_SESSION_KEY)
    if not isinstance(marker, dict) or float(marker.get("until", 0)) <= time.time():
        return None
    return marker


V = TypeVar("V", bound=Callable[..., Any])


def audience(value: str) -> Callable[[V], V]:
    """Declare who may reach a view. A view without a declared audience answers 404 to everyone (portal.gate)."""

    def mark(view: V) -> V:
        setattr(view, AUDIENCE_ATTRIBUTE, value)
        return view

    return mark


public = audience(Audience.PUBLIC)
signed_in = audience(Audience.SIGNED_IN)
partner_only = audience(Audience.PARTNER)
partner_admin_only = audience(Audience.PARTNER_ADMIN)
staff_required = audience(Audience.STAFF)
invited = audience(Audience.INVITED)


def acting_user(request: HttpRequest | Any) -> User:
    """The signed-in user of a view whose audience requires one (the gate let them through)."""
    return cast(User, request.user)


def acting(request: HttpRequest | Any) -> Actor:
    return actor_of(request.user)


def may_hold_api_tokens(user: User) -> bool:
    """Partner people and staff in standing: a token acts as its user, so nobody else has a use for one."""
    return actor_of(user).in_standing


def api_token_for_user(user: User, token_id: int) -> ApiToken:
    """One of the user's own tokens: nobody, staff included, manages another person's tokens here."""
    return found_or_404(ApiToken.objects.filter(user=user, pk=token_id).first(), "token")
