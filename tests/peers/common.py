"""Helpers shared by the loopback IdP peers."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from html.parser import HTMLParser
from types import TracebackType
from typing import Self


class PeerProcess:
    """A peer started by `start()` and stopped by `stop()`; used as a context manager, stopped whatever happens."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]
    has_password: bool = False


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(attr.get("action", ""), attr.get("method", "get").lower(), {})
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attr.get("name"):
            self._current.fields[attr["name"]] = attr.get("value", "")
            if attr.get("type", "").lower() == "password":
                self._current.has_password = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
