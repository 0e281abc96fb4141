"""SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON document: Porte then stores the result as if it had
been PUT, so a PATCH and a PUT of the same end state do the same thing.

Understood paths: `attr`, `attr.sub`, either with the resource's schema URN in front, and `attr[sub eq "v"]` or
`attr[sub eq "v"].sub` on multi-valued attributes (what identity providers send for emails and group members).
Anything else is an `invalidPath` error, never a guess."""

from __future__ import annotations

import re
from typing import Any

from django_scim import exceptions

_FILTERED = re.compile(r'^(\w+)\[\s*(\w+)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\](?:\.(\w+))?$', re.IGNORECASE)
_PLAIN = re.compile(r"^(\w+)(?:\.(\w+))?$")
_OPS = ("add", "remove", "replace")
# Attributes a directory may not write (the service provider assigns them).
_READ_ONLY = {"id", "meta", "schemas", "groups"}


def _bad_path(path: str) -> exceptions.BadRequestError:
    return exceptions.BadRequestError(
        f'Porte does not understand the PATCH path “{path[:100]}”: use attr, attr.sub or attr[sub eq "value"].',
        scim_type="invalidPath",
    )


def _key(document: dict[str, Any], name: str) -> str:
    """Attribute names are case-insensitive (RFC 7643 §2.1): the document's own spelling of `name`."""
    for existing in document:
        if existing.lower() == name.lower():
            return existing
    return name


def _strip_schema(path: str, schemas: list[str]) -> str:
    for urn in schemas:
        if path.lower().startswith(urn.lower() + ":"):
            return path[len(urn) + 1 :]
    return path


def apply(document: dict[str, Any], operations: Any, attributes: set[str]) -> dict[str, Any]:
    """The document after `operations` (a copy; the input is not changed). `attributes` are the names (lower
    case) the resource has: a path to any other is refused, not silently dropped."""
    if not isinstance(operations, list) or not operations:
        raise exceptions.BadRequestError(
            "A PATCH needs a non-empty “Operations” list.", scim_type="invalidSyntax"
        )
    result = {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
        for k, v in document.items()
    }
    schemas = [str(s) for s in document.get("schemas", [])]
    for operation in operations:
        if not isinstance(operation, dict):
            raise exceptions.BadRequestError("Each PATCH operation is an object.", scim_type="invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in _OPS:
            raise exceptions.BadRequestError(
                f"Unknown PATCH op “{str(operation.get('op'))[:20]}”: use add, remove or replace.",
                scim_type="invalidSyntax",
            )
        path = operation.get("path")
        value = operation.get("value")
        if path is None or path == "":
            if op == "remove":
                raise exceptions.BadRequestError("A remove needs a path.", scim_type="noTarget")
            if not isinstance(value, dict):
                raise exceptions.BadRequestError(
                    "Without a path, the value is an object of attributes.", scim_type="invalidValue"
                )
            for name, item in value.items():
                _apply_one(result, op, _strip_schema(str(name), schemas), item, attributes)
            continue
        if not isinstance(path, str):
            raise exceptions.BadRequestError("The PATCH path is a string.", scim_type="invalidPath")
        _apply_one(result, op, _strip_schema(path, schemas), value, attributes)
    return result


def _apply_one(document: dict[str, Any], op: str, path: str, value: Any, attributes: set[str]) -> None:
    name = re.split(r"[.\[]", path, maxsplit=1)[0]
    if name.lower() in _READ_ONLY:
        raise exceptions.BadRequestError(
            f"“{name}” is set by Porte, not by the directory.", scim_type="mutability"
        )
    if name.lower() not in attributes:
        raise exceptions.BadRequestError(
            f"No attribute “{name[:64]}” here: Porte keeps {', '.join(sorted(attributes))}.",
            scim_type="invalidPath",
        )
    filtered = _FILTERED.match(path)
    if filtered:
        _apply_filtered(document, op, filtered, value, path)
        return
    plain = _PLAIN.match(path)
    if not plain:
        raise _bad_path(path)
    name, sub = plain[1], plain[2]
    if name.lower() in _READ_ONLY:
        raise exceptions.BadRequestError(
            f"“{name}” is set by Porte, not by the directory.", scim_type="mutability"
        )
    key = _key(document, name)
    if sub is not None:
        parent = document.get(key)
        if parent is None:
            parent = {}
        if not isinstance(parent, dict):
            raise _bad_path(path)
        parent = dict(parent)
        sub_key = _key(parent, sub)
        if op == "remove":
            parent.pop(sub_key, None)
        else:
            parent[sub_key] = value
        document[key] = parent
        return
    current = document.get(key)
    if op == "remove":
        if isinstance(current, list) and isinstance(value, list):
            # Okta's form: remove these values from a multi-valued attribute.
            gone = {str(v.get("value")) for v in value if isinstance(v, dict)}
            document[key] = [v for v in current if not (isinstance(v, dict) and str(v.get("value")) in gone)]
        else:
            document.pop(key, None)
    elif op == "add" and isinstance(current, list):
        additions = value if isinstance(value, list) else [value]
        seen = {str(v.get("value")) for v in current if isinstance(v, dict)}
        document[key] = current + [
            v for v in additions if not (isinstance(v, dict) and str(v.get("value")) in seen)
        ]
    elif op == "add" and isinstance(current, dict) and isinstance(value, dict):
        document[key] = {**current, **value}
    else:
        document[key] = value


def _apply_filtered(document: dict[str, Any], op: str, match: re.Match[str], value: Any, path: str) -> None:
    name, field, wanted, sub = match[1], match[2], match[3].replace('\\"', '"'), match[4]
    if name.lower() in _READ_ONLY:
        raise exceptions.BadRequestError(
            f"“{name}” is set by Porte, not by the directory.", scim_type="mutability"
        )
    key = _key(document, name)
    items = document.get(key) or []
    if not isinstance(items, list):
        raise _bad_path(path)

    def hit(item: Any) -> bool:
        return isinstance(item, dict) and str(item.get(_key(item, field), "")).lower() == wanted.lower()

    if op == "remove" and sub is None:
        document[key] = [item for item in items if not hit(item)]
        return
    matched = [item for item in items if hit(item)]
    if not matched:
        if op == "remove":
            return
        if sub is None:
            raise exceptions.BadRequestError(f"Nothing matches “{path[:100]}”.", scim_type="noTarget")
        # replace/add of a sub-attribute of a value that is not there yet: it is added (RFC 7644 §3.5.2.1).
        items = [*items, {field: wanted}]
        matched = [items[-1]]
    updated = []
    for item in items:
        if item in matched:
            item = dict(item)
            if sub is None:
                if not isinstance(value, dict):
                    raise exceptions.BadRequestError("The value is an object.", scim_type="invalidValue")
                item.update(value)
            elif op == "remove":
                item.pop(_key(item, sub), None)
            else:
                item[_key(item, sub)] = value
        updated.append(item)
    document[key] = updated
