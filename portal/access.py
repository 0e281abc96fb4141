"""Who may use staff pages: authenticated staff (the MFA middleware has already required a second factor)."""

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse

from portal.models import User


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
