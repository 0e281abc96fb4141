"""SCIM 2.0 endpoints (django-scim2's views; the partner's token decides whose people they are) and the staff
page's token actions."""

from __future__ import annotations

import functools
import json
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_scim import constants, exceptions
from django_scim import views as scim_views

from directory import services
from directory.errors import error_document
from partners.models import Partner
from portal.access import Audience, acting_user, audience, staff_required


class _Body:
    """A body that is not JSON text (not UTF-8, too deep, too big) is the client's error, said as one."""

    def load_body(self, body: bytes) -> Any:
        try:
            text = body.decode(constants.ENCODING).strip() or "{}"
            document = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise exceptions.BadRequestError(
                "The body is not a JSON document (UTF-8).", scim_type="invalidSyntax"
            ) from None
        if not isinstance(document, dict):
            raise exceptions.BadRequestError("The body is a JSON object.", scim_type="invalidSyntax")
        return document

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            request.body  # noqa: B018  (read here, so that a body past the size limit is refused as one)
        except RequestDataTooBig:
            return HttpResponse(status=413)
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]


class _Resource(_Body):
    """A resource id that is not a UUID names nothing (404), rather than failing the lookup."""

    kwargs: dict[str, Any]

    def get_object(self) -> Any:
        value = self.kwargs.get("uuid")
        try:
            uuid.UUID(str(value))
        except ValueError:
            raise exceptions.NotFoundError(str(value)[:64]) from None
        return super().get_object()  # type: ignore[misc]


class UsersView(_Resource, scim_views.UsersView):
    pass


class GroupsView(_Resource, scim_views.GroupsView):
    pass


class UserSearchView(_Body, scim_views.UserSearchView):
    pass


class GroupSearchView(_Body, scim_views.GroupSearchView):
    pass


class NoSuchEndpoint(scim_views.SCIMView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return HttpResponse(status=404)


directory_only = audience(Audience.DIRECTORY)

_DETAILS = {
    404: "No such resource.",
    405: "This endpoint does not take that method.",
    413: "The body is larger than Porte accepts.",
    501: "Porte does not offer this SCIM feature.",
}


def _scim_answer(response: HttpResponse) -> HttpResponse:
    """What django-scim2 leaves short of RFC 7644, completed in one place: every error is an Error document with
    its status as a string (§3.12), and every list a complete ListResponse (§3.4.2)."""
    try:
        document = json.loads(response.content or b"null")
    except ValueError:
        document = None
    status = response.status_code
    if status >= 400:
        if not isinstance(document, dict) or constants.SchemaURI.ERROR not in document.get("schemas", []):
            document = error_document(status, _DETAILS.get(status, "Refused."))
        document["status"] = str(status)
    elif isinstance(document, dict) and document.get("schemas") == [constants.SchemaURI.LIST_RESPONSE]:
        resources = document.get("Resources", [])
        document.setdefault("totalResults", len(resources))
        document.setdefault("itemsPerPage", len(resources))
        document.setdefault("startIndex", 1)
    else:
        return response
    response.content = json.dumps(document).encode()
    response["Content-Type"] = constants.SCIM_CONTENT_TYPE
    return response


_ALWAYS = {"id", "schemas"}


def _names(value: str) -> list[tuple[str, str | None]]:
    """`attributes=userName,name.givenName` as [(attribute, sub-attribute)], lower-cased, URNs dropped."""
    names = []
    for item in value.split(","):
        item = item.strip().rpartition(":")[2] if ":" in item else item.strip()
        attribute, _, sub = item.lower().partition(".")
        if attribute:
            names.append((attribute, sub or None))
    return names


def _projected(resource: dict[str, Any], keep: str, drop: str) -> dict[str, Any]:
    """The `attributes` / `excludedAttributes` of a query (RFC 7644 §3.4.2.5) applied to one resource."""
    if keep:
        wanted = _names(keep)
        result = {}
        for key, value in resource.items():
            subs = [sub for attribute, sub in wanted if attribute == key.lower()]
            if key in _ALWAYS or None in subs:
                result[key] = value
            elif subs and isinstance(value, dict):
                result[key] = {k: v for k, v in value.items() if k.lower() in subs}
        return result
    unwanted = _names(drop)
    result = dict(resource)
    for attribute, sub in unwanted:
        for key in list(result):
            if key.lower() != attribute or key in _ALWAYS:
                continue
            if sub is None:
                del result[key]
            elif isinstance(result[key], dict):
                result[key] = {k: v for k, v in result[key].items() if k.lower() != sub}
    return result


def _project(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    keep, drop = request.GET.get("attributes", ""), request.GET.get("excludedAttributes", "")
    if request.method != "GET" or not (keep or drop) or response.status_code != 200:
        return response
    document = json.loads(response.content)
    if "Resources" in document:
        document["Resources"] = [_projected(r, keep, drop) for r in document["Resources"]]
    else:
        document = _projected(document, keep, drop)
    response.content = json.dumps(document).encode()
    return response


def scim_view(view_class: type[scim_views.SCIMView], **initkwargs: Any) -> Any:
    view = view_class.as_view(**initkwargs)

    @functools.wraps(view)
    def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return _project(request, _scim_answer(view(request, *args, **kwargs)))

    # A directory authenticates with its bearer token, never with a cookie: there is no session to forge.
    answer.csrf_exempt = True  # type: ignore[attr-defined]

    return directory_only(answer)


# --- the partner page: the directory's token ---------------------------------------------------------------------


@staff_required
@require_POST
def directory_token(request: HttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(Partner, slug=slug)
    try:
        connection, token = services.directory_token_rotate(partner=partner, actor=acting_user(request))
    except ValidationError as invalid:
        messages.error(request, " ".join(invalid.messages))
        return redirect(reverse("partner_detail", kwargs={"slug": partner.slug}) + "#directory")
    response = render(
        request,
        "directory/token_created.html",
        {"partner": partner, "connection": connection, "token": token, "porte_url": settings.PUBLIC_URL},
    )
    response["Cache-Control"] = "no-store"
    return response


@staff_required
@require_POST
def directory_off(request: HttpRequest, slug: str) -> HttpResponse:
    partner = get_object_or_404(Partner, slug=slug)
    services.directory_turn_off(partner=partner, actor=acting_user(request), reason="turned off by staff")
    messages.success(request, f"{partner.name}'s directory token no longer works.")
    return redirect(reverse("partner_detail", kwargs={"slug": partner.slug}) + "#directory")
