"""CSV for spreadsheets: every cell Porte writes goes through `SafeWriter`, so no exported text runs as a formula.

A spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return before one) as a formula: a CSV
injection. Much of what Porte exports was chosen by someone else (CloudTrail user agents and error messages, IdP
display names, review comments), so every cell is neutralised, not just the ones that look risky today.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, Protocol

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


class SafeWriter:
    def __init__(self, out: _Writable) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(value) for value in row])
