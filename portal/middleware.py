import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

# Pages are server-rendered with local static assets only: no inline script, no third-party origin.
# form-action allows other origins because signing in posts to, then redirects through, the partner's IdP.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'self'"
)
_SIGNED_IN_AT = "porte_signed_in_at"
_SEEN_AT = "porte_seen_at"


def content_security_policy(get_response: Callable[[HttpRequest], HttpResponse]):
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        return response

    return middleware


def session_limits(get_response: Callable[[HttpRequest], HttpResponse]):
    """End signed-in sessions after SESSION_IDLE_SECONDS without a request, or SESSION_ABSOLUTE_SECONDS after
    sign-in, whichever comes first."""

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            session = request.session
            signed_in_at = session.setdefault(_SIGNED_IN_AT, now)
            seen_at = session.get(_SEEN_AT, now)
            idle = now - seen_at > settings.SESSION_IDLE_SECONDS
            if idle or now - signed_in_at > settings.SESSION_ABSOLUTE_SECONDS:
                logout(request)
                messages.info(
                    request,
                    "Your session ended"
                    + (" after a period of inactivity." if idle else ".")
                    + " Please sign in again.",
                )
            elif now - seen_at >= 60 or _SEEN_AT not in session:
                # Written at most once a minute: an idle limit needs no per-request session write.
                session[_SEEN_AT] = now
        return get_response(request)

    return middleware
