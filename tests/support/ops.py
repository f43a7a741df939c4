"""Operator-area test support: its Redis DB numbers, and a Pushover endpoint that records messages.

The endpoint speaks Pushover's `POST /1/messages.json` (form in; `{"status":1,"request":...}` out;
`{"status":0,"errors":[...]}` with the scripted error statuses), on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

REDIS_DBS = (13, 14, 15)  # operator helper's Redis databases
PUSHOVER_TOKEN = "atesttoken0123456789abcdefghij"  # 30 characters, like a real one
PUSHOVER_USER = "utestuser0123456789abcdefghijk"


class PushoverEndpoint:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, str]] = []
        self._script: list[int] = []
        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def messages(self) -> list[dict[str, str]]:
        """The accepted messages, in arrival order."""
        with self._lock:
            return list(self._messages)

    def answer_next(self, *statuses: int) -> None:
        """The next requests get these HTTP statuses (429, 500, 400...), then 200 again."""
        with self._lock:
            self._script.extend(statuses)

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._script.clear()
            self.requests = 0

    def _reply(self, form: dict[str, str]) -> tuple[int, dict]:
        with self._lock:
            self.requests += 1
            status = self._script.pop(0) if self._script else 200
            if status != 200:
                return status, {"status": 0, "errors": [f"scripted error {status}"], "request": uuid.uuid4().hex}
            if form.get("token") != PUSHOVER_TOKEN or form.get("user") != PUSHOVER_USER:
                return 400, {"status": 0, "errors": ["application token is invalid"], "request": uuid.uuid4().hex}
            self._messages.append(form)
            return 200, {"status": 1, "request": uuid.uuid4().hex}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/1/messages.json":
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
                status, reply = endpoint._reply(form)
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return

        return Handler


@contextmanager
def pushover_endpoint() -> Iterator[PushoverEndpoint]:
    endpoint = PushoverEndpoint()
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()
