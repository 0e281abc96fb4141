"""A loopback HTTP proxy in front of the moto server: it counts AWS calls by action and can hold chosen ones.

Porte's processes reach AWS only through `AWS_ENDPOINT_URL`; pointing that at this proxy instead of moto lets a
test or a benchmark see every call a worker process makes (its action, parameters and when it was made), and
stop a chosen call in flight: a held request is read in full, never forwarded and never answered, so the caller
sits in its socket read exactly there until the proxy is closed; or slow chosen calls down (`delay`: seconds
to wait before forwarding). Everything else is forwarded unchanged to the
upstream endpoint and its answer returned as is.

    with AwsProxy(moto_url, hold=lambda call: call.action == "PutRolePolicy") as proxy:
        ...  # a worker with AWS_ENDPOINT_URL=proxy.url
        proxy.held_event.wait(30)

Query-protocol services (IAM, STS) name the action in the form body (`Action=...`); JSON-protocol services
(Organizations) in the `X-Amz-Target` header. Both are recognised; any other request is named by its path.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, urlsplit

# Not forwarded: they describe the hop, not the request.
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}


@dataclass
class AwsCall:
    """One request seen by the proxy. `at` is time.monotonic(), `wall` time.time(), both at arrival; `status`
    and `answered` (time.time()) are set once the upstream answer has been passed back (0 until then, and for
    a held call)."""

    at: float
    wall: float
    action: str
    params: dict[str, str] = field(default_factory=dict)
    status: int = 0
    answered: float = 0.0

    @property
    def role_name(self) -> str:
        return self.params.get("RoleName", "")

    @property
    def policy_name(self) -> str:
        return self.params.get("PolicyName", "")


def _call_of(path: str, headers: object, body: bytes) -> AwsCall:
    target = headers.get("X-Amz-Target", "")  # type: ignore[attr-defined]
    params = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
    content_type = headers.get("Content-Type", "")  # type: ignore[attr-defined]
    if "x-www-form-urlencoded" in content_type:
        params.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
    action = params.get("Action") or (target.rsplit(".", 1)[-1] if target else f"{path.split('?')[0]}")
    return AwsCall(time.monotonic(), time.time(), action, params)


class AwsProxy:
    def __init__(
        self,
        upstream: str,
        *,
        hold: Callable[[AwsCall], bool] | None = None,
        delay: Callable[[AwsCall], float] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.hold = hold
        self.delay = delay
        self.calls: list[AwsCall] = []
        self.held: list[AwsCall] = []
        self.held_event = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                call = _call_of(self.path, self.headers, body)
                with proxy._lock:
                    proxy.calls.append(call)
                if proxy.hold is not None and proxy.hold(call):
                    with proxy._lock:
                        proxy.held.append(call)
                    proxy.held_event.set()
                    proxy._released.wait()
                    self.close_connection = True  # dropped unanswered
                    return
                if proxy.delay is not None:
                    time.sleep(proxy.delay(call))  # a slow AWS: the answer comes, late
                upstream = getattr(self, "_upstream", None)
                if upstream is None:
                    upstream = self._upstream = http.client.HTTPConnection(
                        proxy.upstream_host, proxy.upstream_port, timeout=120
                    )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                except (OSError, http.client.HTTPException):
                    upstream.close()
                    self._upstream = None
                    self.send_error(502, "upstream unreachable")
                    return
                self.send_response_only(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP_HEADERS and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                call.status, call.answered = response.status, time.time()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-proxy", daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        """Release (drop unanswered) every held request and stop serving."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def snapshot(self) -> list[AwsCall]:
        with self._lock:
            return list(self.calls)

    def counts(self) -> Counter[str]:
        return Counter(call.action for call in self.snapshot())
