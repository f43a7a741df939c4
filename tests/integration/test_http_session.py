"""`make_session` reads the environment once, at creation, not on every call: an operator's proxy
still carries the calls (NO_PROXY honoured), and a variable set afterwards changes nothing.
Real HTTP to two local servers, one of them a forward proxy; `.invalid` hosts never resolve, so a
call that skipped the proxy would fail."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pm_arb_tasks.adapters.http import make_session, request_json

pytestmark = pytest.mark.integration
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
UPSTREAM = "http://oracle.invalid/api/v3/ticker/price"


def _server(name: str) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # a forward proxy sees the absolute URL as the path
            body = json.dumps({"via": name, "path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@pytest.fixture()
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(proxy URL, direct URL), with no proxy variable of the machine's own in the way."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    proxy, proxy_url = _server("proxy")
    direct, direct_url = _server("direct")
    yield proxy_url, direct_url
    proxy.shutdown()
    direct.shutdown()


def test_an_operators_proxy_carries_the_calls(servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy_url, _ = servers
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    session = make_session(retries=0)
    for _ in range(2):
        assert request_json(session, "GET", UPSTREAM) == {"via": "proxy", "path": UPSTREAM}


def test_no_proxy_hosts_are_called_directly(servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy_url, direct_url = servers
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = make_session(retries=0)
    assert request_json(session, "GET", f"{direct_url}/x")["via"] == "direct"
    assert request_json(session, "GET", UPSTREAM)["via"] == "proxy"


def test_the_environment_is_not_read_again_per_call(
    servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, direct_url = servers
    session = make_session(retries=0)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)  # too late for this session
    assert request_json(session, "GET", f"{direct_url}/x")["via"] == "direct"
    assert request_json(make_session(retries=0), "GET", f"{direct_url}/x")["via"] == "proxy"
