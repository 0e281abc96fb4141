"""Who may use portal pages: staff pages (authenticated staff; the MFA middleware has already required a second
factor) and a person's own API tokens."""

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from portal.models import ApiToken, User


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_staff:
            # Staff pages do not exist for partner users.
            raise Http404
        return view(request, *args, **kwargs)

    return wrapped


def acting_user(request: HttpRequest) -> User:
    """The signed-in user of a view that requires one (login_required ran before)."""
    return cast(User, request.user)


def may_hold_api_tokens(user: User) -> bool:
    """Partner users (with an active place in their organisation) and staff; a token acts as its user, so other
    local accounts, which can do nothing on the API, have no use for one."""
    # `membership` belongs to the partners app: read by name, portal imports no app.
    membership = getattr(user, "membership", None)
    return user.is_active and (user.is_staff or (membership is not None and membership.is_active))


def api_token_for_user(user: User, token_id: int) -> ApiToken:
    """One of the user's own tokens: nobody, staff included, manages another person's tokens here."""
    token = ApiToken.objects.filter(user=user, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    return token
