"""A Slack-compatible webhook receiver on loopback: records every JSON body, answers with a settable status."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookSink:
    def __init__(self) -> None:
        self.bodies: list[dict[str, object]] = []
        self.status = 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                sink.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(sink.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # The path stands for the secret part of a real webhook URL: it must never appear in logs or errors.
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token-123"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
