"""Porte's side of django-scim2: who is asking (the partner's bearer token), what they may see (their partner's
people and groups, nothing else), and how SCIM documents become calls to directory.services.

django-scim2 provides the protocol (routes, discovery documents, filter parsing, error documents); these
adapters replace its model handling, which assumes one tenant and Django's own users and groups."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_scim import constants, exceptions
from django_scim.adapters import SCIMGroup, SCIMUser

from directory import patch, services
from directory.errors import error_document
from directory.filters import GroupFilter, UserFilter, base_location, directory_of
from directory.models import DirectoryConnection, DirectoryGroup
from partners.models import Membership
from portal.api_auth import note_use
from portal.services import api_token_hash

# Porte's own limits on what a directory sends (beyond them: 400, nothing stored).
MAX_TEXT = 255
MAX_MEMBERS = 10_000
# What a PATCH may name (lower case): the attributes Porte keeps (directory.filters' Schemas).
USER_ATTRIBUTES = {"username", "externalid", "name", "displayname", "emails", "active"}
GROUP_ATTRIBUTES = {"displayname", "externalid", "members"}
_EMAIL = EmailValidator()


# --- who is asking ----------------------------------------------------------------------------------------------


def _error(status: int, detail: str) -> HttpResponse:
    return HttpResponse(
        json.dumps(error_document(status, detail)), content_type=constants.SCIM_CONTENT_TYPE, status=status
    )


def connection_for_token(presented: str) -> DirectoryConnection | None:
    match = services.TOKEN_PATTERN.fullmatch(presented)
    if match is None:
        return None
    connection = (
        DirectoryConnection.objects.select_related("partner")
        .filter(token_hash=api_token_hash(match[2]))
        .first()
    )
    if connection is None or not hmac.compare_digest(connection.token_prefix, match[1]):
        return None
    return connection


class DirectoryAuthentication:
    """django-scim2's AUTH_CHECK_MIDDLEWARE: every SCIM request carries the partner's token, and the request is
    then the partner's directory (`request.porte_directory`). Sessions and personal API tokens count for
    nothing here."""

    def __init__(self, get_response: Callable[..., HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        connection = connection_for_token(presented.strip()) if scheme.lower() == "bearer" else None
        if connection is None:
            response = _error(401, "Send the partner's SCIM token as `Authorization: Bearer porte_scim_…`.")
            response["WWW-Authenticate"] = 'Bearer realm="porte-scim", error="invalid_token"'
            return response
        if connection.partner.status == connection.partner.Status.OFFBOARDED:
            return _error(403, "This partner is offboarded: its directory is closed.")
        request.porte_directory = connection  # type: ignore[attr-defined]
        note_use(connection)
        return self.get_response(request, *args, **kwargs)


# --- what they may see (django-scim2's getters) -------------------------------------------------------------------


class ServiceProviderConfig:
    def __init__(self, request: HttpRequest | None = None) -> None:
        self.request = request

    def to_dict(self) -> dict[str, Any]:
        return {
            "schemas": [constants.SchemaURI.SERVICE_PROVIDER_CONFIG],
            "documentationUri": settings.PUBLIC_URL + "/api/docs/",
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": 200},
            "changePassword": {"supported": False},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": settings.SCIM_SERVICE_PROVIDER["AUTHENTICATION_SCHEMES"],
            "meta": {
                "location": urljoin(base_location(), reverse("scim:service-provider-config")),
                "resourceType": "ServiceProviderConfig",
            },
        }


# --- documents in, services out -----------------------------------------------------------------------------------


def _text(document: dict[str, Any], name: str, *, required: bool) -> str:
    """`document`'s keys are lower-cased; `name` is the attribute's SCIM spelling."""
    value = document.get(name.lower())
    if value is None or value == "":
        if required:
            raise exceptions.BadRequestError(f"“{name}” is required.", scim_type="invalidValue")
        return ""
    if not isinstance(value, str):
        raise exceptions.BadRequestError(f"“{name}” is a string.", scim_type="invalidValue")
    value = value.strip()
    if len(value) > MAX_TEXT or "\x00" in value or not _encodable(value):
        raise exceptions.BadRequestError(
            f"“{name}” is at most {MAX_TEXT} characters, with no NUL.", scim_type="invalidValue"
        )
    if required and not value:
        raise exceptions.BadRequestError(f"“{name}” is required.", scim_type="invalidValue")
    return value


def _encodable(value: str) -> bool:
    """JSON may carry an unpaired surrogate (\\ud800), which no UTF-8 column can store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _boolean(value: Any, name: str) -> bool:
    # Some directories (Microsoft Entra ID) send booleans as the strings "True"/"False".
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise exceptions.BadRequestError(f"“{name}” is true or false.", scim_type="invalidValue")


def _lower_keys(document: Any, what: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise exceptions.BadRequestError(f"{what} is a JSON object.", scim_type="invalidSyntax")
    return {str(k).lower(): v for k, v in document.items()}


def _email(emails: Any) -> str:
    if emails in (None, []):
        return ""
    if not isinstance(emails, list) or not all(isinstance(e, dict) for e in emails):
        raise exceptions.BadRequestError("“emails” is a list of objects.", scim_type="invalidValue")
    ordered = sorted(emails, key=lambda e: not e.get("primary"))
    value = ordered[0].get("value") if ordered else None
    if not isinstance(value, str) or len(value) > 254 or not _encodable(value):
        raise exceptions.BadRequestError("An e-mail address is a string.", scim_type="invalidValue")
    try:
        _EMAIL(value.strip())
    except ValidationError:
        raise exceptions.BadRequestError(
            f"“{value[:100]}” is not an e-mail address.", scim_type="invalidValue"
        ) from None
    return value.strip()


def person_record(document: Any) -> services.PersonRecord:
    doc = _lower_keys(document, "A User")
    name = doc.get("name") or {}
    name = _lower_keys(name, "“name”")
    given, family = _text(name, "givenName", required=False), _text(name, "familyName", required=False)
    display_name = _text(doc, "displayName", required=False)
    if not given and not family:
        # Only a displayName: it is the person's name as the directory shows it.
        given, _, family = display_name.partition(" ")
    return services.PersonRecord(
        user_name=_text(doc, "userName", required=True),
        external_id=_text(doc, "externalId", required=True),
        given_name=given,
        family_name=family,
        email=_email(doc.get("emails")),
        active=_boolean(doc.get("active", True), "active"),
    )


def group_record(document: Any) -> services.GroupRecord:
    doc = _lower_keys(document, "A Group")
    members = doc.get("members") or []
    if not isinstance(members, list) or len(members) > MAX_MEMBERS:
        raise exceptions.BadRequestError(
            f"“members” is a list of at most {MAX_MEMBERS} objects.", scim_type="invalidValue"
        )
    ids = []
    for member in members:
        if not isinstance(member, dict) or not isinstance(member.get("value"), str):
            raise exceptions.BadRequestError(
                "Each member is an object with a “value” (a user's id).", scim_type="invalidValue"
            )
        ids.append(member["value"])
    return services.GroupRecord(
        display_name=_text(doc, "displayName", required=True),
        external_id=_text(doc, "externalId", required=False),
        member_ids=tuple(ids),
    )


def _stored(call: Callable[[], Any]) -> Any:
    """A service call, its refusals said the SCIM way (RFC 7644 §3.12)."""
    try:
        with transaction.atomic():
            return call()
    except services.DirectoryConflict as conflict:
        raise exceptions.IntegrityError(str(conflict), scim_type="uniqueness") from None
    except IntegrityError:
        raise exceptions.IntegrityError(
            "It conflicts with an existing resource.", scim_type="uniqueness"
        ) from None
    except ValidationError as invalid:
        messages = [m for ms in getattr(invalid, "message_dict", {"": invalid.messages}).values() for m in ms]
        raise exceptions.BadRequestError(" ".join(messages), scim_type="invalidValue") from None


def _resource_type(name: str, endpoint: str, schema: str, description: str) -> dict[str, Any]:
    return {
        "schemas": [constants.SchemaURI.RESOURCE_TYPE],
        "id": name,
        "name": name,
        # Relative to the base URL (RFC 7643 §6).
        "endpoint": endpoint,
        "description": description,
        "schema": schema,
        "meta": {
            "location": urljoin(base_location(), reverse("scim:resource-types", kwargs={"uuid": name})),
            "resourceType": "ResourceType",
        },
    }


class ScimUser(SCIMUser):
    """A person of the partner (a Membership) as a SCIM User."""

    @classmethod
    def resource_type_dict(cls, request: HttpRequest | None = None) -> dict[str, Any]:
        return _resource_type("User", "/Users", constants.SchemaURI.USER, "A person of the partner")

    ATTR_MAP = UserFilter.attr_map
    obj: Membership

    def __init__(self, obj: Membership, request: HttpRequest | None = None) -> None:
        super().__init__(obj, request)
        self._record: services.PersonRecord | None = None

    @property
    def display_name(self) -> str:
        return self.obj.user.get_full_name() or self.obj.scim_user_name

    def to_dict(self) -> dict[str, Any]:
        user = self.obj.user
        # Attributes without a value are left out (RFC 7643 §2.5: unassigned, not empty).
        name = {k: v for k, v in (("givenName", user.first_name), ("familyName", user.last_name)) if v}
        document: dict[str, Any] = {
            "schemas": [constants.SchemaURI.USER],
            "id": self.id,
            "externalId": self.obj.scim_external_id,
            "userName": self.obj.scim_user_name,
            "displayName": self.display_name,
            "active": self.obj.is_active,
            "groups": [
                {
                    "value": str(g.scim_id),
                    "$ref": ScimGroup(g, self.request).location,
                    "display": g.display_name,
                }
                for g in self.obj.directory_groups.all()
            ],
            "meta": {
                "resourceType": "User",
                "created": self.obj.created_at.isoformat(),
                "lastModified": self.obj.created_at.isoformat(),
                "location": self.location,
            },
        }
        if name:
            document["name"] = name
        if user.email:
            document["emails"] = [{"value": user.email}]
        return document

    def validate_dict(self, d: Any) -> None:
        self._record = person_record(d)

    def from_dict(self, d: Any) -> None:
        self._record = self._record or person_record(d)

    def save(self) -> None:
        record = self._record
        assert record is not None
        if self.obj.pk is None:
            self.obj = _stored(
                lambda: services.directory_user_provision(
                    connection=directory_of(self.request), record=record
                )
            )
        else:
            self.obj = _stored(lambda: services.directory_user_update(membership=self.obj, record=record))

    def delete(self) -> None:
        _stored(lambda: services.directory_user_delete(membership=self.obj))

    def handle_operations(self, operations: Any) -> None:
        current = self.to_dict()
        # What Porte derives (displayName) is not the directory's to keep: dropped, so that a
        # PATCH removing the name does not get it back from them.
        del current["displayName"]
        self._record = person_record(patch.apply(current, operations, USER_ATTRIBUTES))
        self.save()


class ScimGroup(SCIMGroup):
    """A directory group as a SCIM Group."""

    @classmethod
    def resource_type_dict(cls, request: HttpRequest | None = None) -> dict[str, Any]:
        return _resource_type(
            "Group", "/Groups", constants.SchemaURI.GROUP, "A group of the partner's people"
        )

    ATTR_MAP = GroupFilter.attr_map
    obj: DirectoryGroup

    def __init__(self, obj: DirectoryGroup, request: HttpRequest | None = None) -> None:
        super().__init__(obj, request)
        self._record: services.GroupRecord | None = None

    @property
    def display_name(self) -> str:
        return self.obj.display_name

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schemas": [constants.SchemaURI.GROUP],
            "id": self.id,
            "displayName": self.obj.display_name,
            "members": [
                {"value": str(m.scim_id), "$ref": ScimUser(m, self.request).location}
                for m in self.obj.members.all()
                if m.scim_id is not None
            ]
            if self.obj.pk
            else [],
            "meta": {
                "resourceType": "Group",
                "created": self.obj.created_at.isoformat(),
                "lastModified": self.obj.updated_at.isoformat(),
                "location": self.location,
            },
        }
        if self.obj.scim_external_id:
            document["externalId"] = self.obj.scim_external_id
        return document

    def validate_dict(self, d: Any) -> None:
        self._record = group_record(d)

    def from_dict(self, d: Any) -> None:
        self._record = self._record or group_record(d)

    def save(self) -> None:
        record = self._record
        assert record is not None
        if self.obj.pk is None:
            self.obj = _stored(
                lambda: services.directory_group_create(connection=directory_of(self.request), record=record)
            )
        else:
            self.obj = _stored(lambda: services.directory_group_update(group=self.obj, record=record))

    def delete(self) -> None:
        _stored(lambda: services.directory_group_delete(group=self.obj))

    def handle_operations(self, operations: Any) -> None:
        self._record = group_record(patch.apply(self.to_dict(), operations, GROUP_ATTRIBUTES))
        self.save()
