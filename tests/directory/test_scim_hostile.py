"""Every SCIM write and query, sent hostile input by a directory holding a valid token: a SCIM error document
(RFC 7644 §3.12) with a 4xx status, never a server error, and nothing stored.

The bodies start from a valid User or Group and set one attribute at a time to each value of the hostile-input
suite (tests/portal/test_hostile_input.py); then bodies that are not JSON, PATCH operations that make no sense,
filters that do not parse or do not fit, and pagination that is not a number."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portal.models import User
from tests.directory.scim import Directory, scim_error
from tests.fixtures.domain import World
from tests.helpers import require_postgresql
from tests.portal.test_hostile_input import INVALID_JSON_VALUES, RAW_BODIES, database_state

pytestmark = pytest.mark.django_db

TABLES = [
    "partners_membership",
    "portal_user",
    "socialaccount_socialaccount",
    "directory_directorygroup",
    "directory_directorygroup_members",
    "portal_auditevent",
    "grants_grant",
]
USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "dave@acme.example",
    "externalId": "acme-0077",
    "name": {"givenName": "Dave", "familyName": "Lee"},
    "displayName": "Dave Lee",
    "emails": [{"value": "dave@acme.example"}],
    "active": True,
}
GROUP = {"displayName": "auditors", "externalId": "g-1", "members": []}
# Every value of INVALID_JSON_VALUES is refused in these attributes (the others are read or ignored), but for
# the value that is the attribute's own type: `name` is an object (unknown sub-attributes are ignored).
USER_CHECKED = ["userName", "externalId", "name", "displayName", "emails", "active"]
OWN_TYPE = {"name": "object"}
GROUP_CHECKED = ["displayName", "externalId", "members"]

HOSTILE_OPERATIONS: dict[str, Any] = {
    "not a list": {"op": "replace", "path": "active", "value": False},
    "empty": [],
    "not an object": ["replace"],
    "unknown op": [{"op": "move", "path": "active", "value": False}],
    "op not a string": [{"op": ["replace"], "path": "active", "value": False}],
    "remove without a path": [{"op": "remove"}],
    "no path, value not an object": [{"op": "replace", "value": "x"}],
    "path not a string": [{"op": "replace", "path": 7, "value": "x"}],
    "unclosed filter": [{"op": "replace", "path": "emails[value eq ", "value": "x"}],
    "filter not understood": [{"op": "replace", "path": 'emails[value co "a"]', "value": "x"}],
    "path with a dot too many": [{"op": "replace", "path": "name.givenName.x", "value": "x"}],
    "read-only attribute": [{"op": "replace", "path": "id", "value": "00000000-0000-4000-8000-000000000000"}],
    "meta": [{"op": "replace", "path": "meta", "value": {}}],
    "NUL in the path": [{"op": "replace", "path": "user\x00Name", "value": "x"}],
    "long path": [{"op": "replace", "path": "a" * 5000, "value": "x"}],
    "sub-attribute of a string": [{"op": "replace", "path": "userName.first", "value": "x"}],
}
HOSTILE_FILTERS = [
    "userName eq",
    'userName eq "unclosed',
    'userName eq "x" and (',
    "' OR 1=1 --",
    'id eq "not-a-uuid"',
    'active eq "maybe"',
    'emails co "@"',
    'nickName eq "x"',
    "x" * 2000,
    'userName eq "x") OR (1=1',
]
HOSTILE_PAGES = ["startIndex=0", "startIndex=-5", "startIndex=abc", "count=abc", "count=-1", "startIndex=1e3"]


@pytest.fixture
def directory(acme: World, staff: User) -> Directory:
    require_postgresql("a filter value its column cannot hold is a PostgreSQL error")
    return Directory(acme.partner, staff)


def _refused_and_unchanged(directory: Directory, method: str, path: str, body: Any, what: str) -> str | None:
    before = database_state(TABLES)
    response = directory.send(method, path, body)
    after = database_state(TABLES)
    if response.status_code >= 500 or not 400 <= response.status_code < 500:
        return f"{what}: answered {response.status_code} {response.content[:200]!r}"
    try:
        scim_error(response, response.status_code)
    except (AssertionError, ValueError) as wrong:
        return f"{what}: not a SCIM error document ({wrong})"
    changed = [table for table in TABLES if before[table] != after[table]]
    return f"{what}: changed {changed}" if changed else None


def _with(document: dict[str, Any], attribute: str, value: Any) -> dict[str, Any]:
    return {**document, attribute: value}


def test_every_attribute_refuses_every_invalid_value(directory: Directory) -> None:
    person = directory.create_user("acme-0001", "alice@acme.example")
    group = directory.create_group("engineers", [person["id"]])
    failures = []
    requests = 0
    for label, value in INVALID_JSON_VALUES.items():
        for attribute in USER_CHECKED:
            if OWN_TYPE.get(attribute) == label:
                continue
            body = _with(USER, attribute, value)
            for method, path in (("post", "Users"), ("put", f"Users/{person['id']}")):
                requests += 1
                failures.append(
                    _refused_and_unchanged(
                        directory, method, path, body, f"{method} User {attribute}={label}"
                    )
                )
            requests += 1
            operation = {"op": "replace", "path": attribute, "value": value}
            failures.append(
                _refused_and_unchanged(
                    directory,
                    "patch",
                    f"Users/{person['id']}",
                    {"Operations": [operation]},
                    f"patch User {attribute}={label}",
                )
            )
        for attribute in GROUP_CHECKED:
            body = _with(GROUP, attribute, value)
            for method, path in (("post", "Groups"), ("put", f"Groups/{group['id']}")):
                requests += 1
                failures.append(
                    _refused_and_unchanged(
                        directory, method, path, body, f"{method} Group {attribute}={label}"
                    )
                )
    print(f"SCIM hostile attributes: {requests} requests")  # with -s
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def test_bodies_that_are_not_scim_documents_are_refused(directory: Directory) -> None:
    person = directory.create_user("acme-0001", "alice@acme.example")
    bodies = {label: raw for label, (raw, _type) in RAW_BODIES.items()}
    bodies |= {"null": b"null", "a number": b"42", "too big": b'{"userName": "' + b"x" * 3_000_000 + b'"}'}
    failures = []
    for label, raw in bodies.items():
        for method, path in (
            ("post", "Users"),
            ("put", f"Users/{person['id']}"),
            ("patch", f"Users/{person['id']}"),
            ("post", "Groups"),
            ("post", "Users/.search"),
        ):
            failures.append(_refused_and_unchanged(directory, method, path, raw, f"{method} {path} {label}"))
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def test_patch_operations_that_make_no_sense_are_refused(directory: Directory) -> None:
    person = directory.create_user("acme-0001", "alice@acme.example")
    group = directory.create_group("engineers", [person["id"]])
    failures = []
    for label, operations in HOSTILE_OPERATIONS.items():
        for path in (f"Users/{person['id']}", f"Groups/{group['id']}"):
            body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}
            failures.append(_refused_and_unchanged(directory, "patch", path, body, f"patch {path} {label}"))
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def test_filters_and_pages_that_do_not_fit_are_refused(directory: Directory) -> None:
    directory.create_user("acme-0001", "alice@acme.example")
    failures = []
    for query in [f"filter={f}" for f in HOSTILE_FILTERS] + HOSTILE_PAGES:
        for resource in ("Users", "Groups"):
            response = directory.get(f"{resource}?{query}")
            if response.status_code != 400:
                failures.append(
                    f"GET {resource}?{query[:60]} -> {response.status_code} {response.content[:150]!r}"
                )
                continue
            scim_error(response, 400)
    for search in (
        json.dumps({"filter": HOSTILE_FILTERS[0]}),
        json.dumps({"schemas": ["x"], "filter": 'userName eq "a"'}),
    ):
        failures.append(
            _refused_and_unchanged(directory, "post", "Users/.search", search, f"search {search[:40]}")
        )
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def test_an_unknown_id_or_endpoint_is_a_scim_404(directory: Directory) -> None:
    for path in (
        "Users/not-a-uuid",
        "Users/00000000-0000-4000-8000-000000000000",
        "Groups/%00",
        "Nope",
        "Users/a/b",
    ):
        scim_error(directory.get(path), 404)
    scim_error(directory.send("delete", "ServiceProviderConfig", ""), 405)
    scim_error(directory.send("post", "Bulk", {}), 501)
