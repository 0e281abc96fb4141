from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

# Pages are server-rendered with local static assets only: no inline script, no third-party origin.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self' http: https:; frame-ancestors 'none'; base-uri 'self'"
)


def content_security_policy(get_response: Callable[[HttpRequest], HttpResponse]):
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        return response

    return middleware
