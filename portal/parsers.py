"""The API's JSON parser: DRF's, plus the checks every write needs (portal.validation)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from portal.validation import json_problem


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            document = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("The JSON body is nested too deeply.") from None
        problem = json_problem(document)
        if problem:
            raise ParseError(problem[0].upper() + problem[1:])
        return document
