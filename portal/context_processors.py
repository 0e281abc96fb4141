from django.http import HttpRequest

from portal.access import Actor, actor_of


def actor(request: HttpRequest) -> dict[str, Actor]:
    """`actor` in every template: the person's place (portal.access), so pages never re-derive it."""
    return {"actor": actor_of(getattr(request, "user", None))}
