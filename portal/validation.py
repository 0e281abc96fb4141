"""What no text Porte accepts may hold, checked once at the edge (portal.middleware.input_guard for query
strings and forms, portal.parsers.StrictJSONParser for API bodies) so that no view has to remember it.

PostgreSQL cannot store a NUL character or a lone UTF-16 surrogate in text, and a JSON body nested deeper than
any document Porte reads is an attack, not data: each is refused with a 400 that says which field was wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_JSON_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be accepted as text, or None."""
    match = _UNSTORABLE.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "contains a NUL character"
    return "contains invalid Unicode (an unpaired surrogate)"


def fields_problem(items: Iterable[tuple[str, str]]) -> str | None:
    """The first unacceptable name or value among form/query items, as a sentence naming the field."""
    for name, value in items:
        problem = text_problem(name) or text_problem(value)
        if problem:
            shown = name if text_problem(name) is None else "a field name"
            return f"“{shown[:60]}” {problem}: remove it and try again."
    return None


def json_problem(document: object) -> str | None:
    """The first unacceptable part of a parsed JSON document (too deep, or text that cannot be stored)."""
    stack: list[tuple[object, int, str]] = [(document, 0, "the body")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep."
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                return f"{where} {problem}."
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem:
                    return f"A key in {where} {problem}."
                stack.append((item, depth + 1, f"“{key[:60]}”"))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, where) for item in value)
    return None
