"""What a partner's directory may see, for django-scim2 (its getters and filter parsers): its partner's people
and groups, nothing else. Kept apart from directory.scim because django-scim2's adapters read these classes
while they are being defined."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import prefetch_related_objects
from django.http import HttpRequest
from django_scim.filters import FilterQuery
from scim2_filter_parser.queries.sql import SQLQuery

from directory.models import DirectoryConnection, DirectoryGroup
from partners.models import Membership


def directory_of(request: HttpRequest) -> DirectoryConnection:
    """The partner directory asking (set by directory.scim.DirectoryAuthentication)."""
    return request.porte_directory  # type: ignore[attr-defined,no-any-return]


def user_model() -> type[Membership]:
    return Membership


def base_location(request: HttpRequest | None = None, *args: Any, **kwargs: Any) -> str:
    return settings.PUBLIC_URL + "/"


def extra_filter_kwargs(model: Any) -> Callable[..., dict[str, Any]]:
    """Every lookup, list and search is the asking partner's, whatever its filter says."""

    def kwargs_for(request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"partner_id": directory_of(request).partner_id}

    return kwargs_for


def extra_exclude_kwargs(model: Any) -> Callable[..., dict[str, Any]]:
    """Memberships the directory never named (or deleted) are not its User resources."""

    def kwargs_for(request: HttpRequest, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"scim_id": None} if model is Membership else {}

    return kwargs_for


def object_post_processor(model: Any) -> Callable[..., Any]:
    def process(request: HttpRequest, obj: Any) -> Any:
        return obj

    return process


# What a resource's document reads besides its row: loaded for a whole page at once, not per resource.
_RELATED = {Membership: ("user", "directory_groups"), DirectoryGroup: ("members",)}


def queryset_post_processor(model: Any) -> Callable[..., Any]:
    def process(request: HttpRequest, queryset: Any) -> Any:
        return queryset.prefetch_related(*_RELATED[queryset.model])

    return process


class _PartnerFilter(FilterQuery):
    """A SCIM filter, as SQL over the partner's rows only (the filter is wrapped, so an `or` in it cannot
    reach past the partner)."""

    @classmethod
    def search(cls, filter_query: str, request: HttpRequest | None = None) -> Any:
        query = SQLQuery(filter_query, cls.table_name(), cls.attr_map, cls.joins)
        if query.where_sql is None:
            names = sorted({attr[0] for attr in cls.attr_map})
            raise ValueError(f"Porte filters on {', '.join(names)} only.")
        assert request is not None
        sql = f"SELECT * FROM ({query.sql.rstrip().rstrip(';')}) AS found WHERE found.partner_id = %s"  # noqa: S608
        rows = cls.model_getter().objects.raw(sql, [*query.params, directory_of(request).partner_id])
        try:
            # Read here, in a savepoint: a value the column cannot hold (`id eq "x"`, `active eq "maybe"`) is the
            # filter's error, and must not break the request's transaction.
            with transaction.atomic():
                found = list(rows)
        except DatabaseError:
            raise ValueError("A value in the filter does not fit its attribute.") from None
        prefetch_related_objects(found, *_RELATED[cls.model_getter()])
        return found


class UserFilter(_PartnerFilter):
    model_getter = user_model
    attr_map = {
        ("userName", None, None): "scim_user_name",
        ("externalId", None, None): "scim_external_id",
        ("active", None, None): "is_active",
        ("id", None, None): "scim_id",
    }


class GroupFilter(_PartnerFilter):
    model_getter = staticmethod(lambda: DirectoryGroup)  # type: ignore[assignment]
    attr_map = {
        ("displayName", None, None): "display_name",
        ("externalId", None, None): "scim_external_id",
        ("id", None, None): "scim_id",
    }


# --- what the directory is told Porte keeps (the Schemas endpoint) ------------------------------------------------

# Per resource schema, the attributes Porte stores (and their sub-attributes); the rest of the standard
# schemas would be accepted and dropped, so they are not offered. Attributes Porte derives are read-only.
_KEPT = {
    "urn:ietf:params:scim:schemas:core:2.0:User": {
        "userName": None,
        "name": {"givenName", "familyName"},
        "displayName": None,
        "emails": {"value"},
        "active": None,
        "groups": {"value", "$ref", "display"},
    },
    "urn:ietf:params:scim:schemas:core:2.0:Group": {"displayName": None, "members": {"value", "$ref"}},
}
_DERIVED = {"displayName"}
# A Group needs its name (eligibilities use it); a User's standing is always stated.
_REQUIRED = {
    "urn:ietf:params:scim:schemas:core:2.0:User": {"active"},
    "urn:ietf:params:scim:schemas:core:2.0:Group": {"displayName"},
}
# A person's identity in Porte is (the partner's IdP, subject): the directory must say the subject.
_EXTERNAL_ID = {
    "name": "externalId",
    "type": "string",
    "multiValued": False,
    "description": "The person's subject at the partner's identity provider (OIDC `sub`, SAML NameID).",
    "required": True,
    "caseExact": True,
    "mutability": "immutable",
    "returned": "default",
    "uniqueness": "server",
}
_SCHEMA_URN = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def _kept(schema: dict[str, Any]) -> dict[str, Any]:
    import copy

    schema = copy.deepcopy(schema)
    kept = _KEPT.get(schema["id"])
    if kept is not None:
        attributes = [a for a in schema["attributes"] if a["name"] in kept]
        for attribute in attributes:
            subs = kept[attribute["name"]]
            if subs is not None:
                attribute["subAttributes"] = [s for s in attribute["subAttributes"] if s["name"] in subs]
                for sub in attribute["subAttributes"]:
                    if sub["name"] in _DERIVED:
                        sub["mutability"] = "readOnly"
            if attribute["name"] in _DERIVED and schema["id"].endswith(":User"):
                attribute["mutability"] = "readOnly"
        for attribute in attributes:
            if attribute["name"] in _REQUIRED[schema["id"]]:
                attribute["required"] = True
        if schema["id"].endswith(":User"):
            attributes.insert(0, _EXTERNAL_ID)
        schema["attributes"] = attributes
    schema["schemas"] = [_SCHEMA_URN]
    schema["meta"] = {
        "resourceType": "Schema",
        "location": f"{settings.PUBLIC_URL}/scim/v2/Schemas/{schema['id']}",
    }
    return schema


def schemas() -> list[dict[str, Any]]:
    from django_scim.schemas import ALL

    return [_kept(schema) for schema in ALL if ":extension:" not in schema["id"]]
