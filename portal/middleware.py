import json
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.forms import BaseForm
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.template.response import TemplateResponse

from portal.responses import bad_request
from portal.validation import fields_problem

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


def saml_on_public_origin(get_response: Callable[[HttpRequest], HttpResponse]):
    """SAML messages carry Porte's own addresses (ACS, SLS, metadata), which allauth builds from the request: so
    SAML is served on PORTE_PUBLIC_URL's origin only, never on whatever Host a request came with."""
    prefix = "/accounts/saml/"

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.path.startswith(prefix) and request.build_absolute_uri("/")[:-1] != settings.PUBLIC_URL:
            if request.method in ("GET", "HEAD"):
                return HttpResponseRedirect(settings.PUBLIC_URL + request.get_full_path())
            return HttpResponseBadRequest(f"SAML is served at {settings.PUBLIC_URL} only.")
        return get_response(request)

    return middleware


def session_started(sender: object, request: HttpRequest, user: object, **kwargs: object) -> None:
    """django.contrib.auth's user_logged_in: the session's clocks start at the sign-in itself, written with the
    sign-in's own session write (the first page after it then has nothing to write)."""
    now = int(time.time())
    request.session[_SIGNED_IN_AT] = now
    request.session[_SEEN_AT] = now


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


def _all_items(query: QueryDict) -> Iterator[tuple[str, str]]:
    return ((name, value) for name, values in query.lists() for value in values)


class InputGuard:
    """Refuse, before any view runs, a query string or form holding text no field can store (portal.validation);
    and answer 400 when a form page is shown again with its errors (any TemplateResponse to a POST whose
    context holds a bound form with errors: Porte's pages and allauth's alike), so that a refused write
    never looks like a success to a script or a proxy.

    It runs after the gate (process_view), so someone outside a page's audience learns nothing from it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: object, args: object, kwargs: object):
        problem = fields_problem(_all_items(request.GET)) or (
            fields_problem(_all_items(request.POST)) if request.method == "POST" else None
        )
        if problem is None:
            return None
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": problem}, status=400)
        if request.path.startswith("/scim/"):
            # A SCIM client reads errors as RFC 7644 §3.12 documents.
            error = {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "detail": problem,
            }
            return HttpResponse(json.dumps(error), content_type="application/scim+json", status=400)
        return bad_request(request, problem)

    def process_template_response(self, request: HttpRequest, response: TemplateResponse) -> TemplateResponse:
        if request.method == "POST" and response.status_code == 200:
            context = response.context_data or {}
            if any(
                isinstance(value, BaseForm) and value.is_bound and value.errors for value in context.values()
            ):
                response.status_code = 400
        return response
