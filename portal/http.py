from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The peer address. Behind a proxy, production sets the proxy to overwrite REMOTE_ADDR (never trust a
    client-supplied X-Forwarded-For here)."""
    return request.META.get("REMOTE_ADDR") or None
