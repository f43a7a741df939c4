"""The simulator's app factory and a real threaded HTTP server around it.

One host stands in for every upstream (the paths do not collide), so pointing every *_API_URL
setting at the same base URL is enough. The venue engineer's order endpoints live in
`pm_arb_tasks.sim.clob_orders`; when that module exists its `register(app, scenario)` is
called here, so the two halves never edit the same file.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from pm_arb_tasks.sim.clob_books import clob
from pm_arb_tasks.sim.common import EXTENSION
from pm_arb_tasks.sim.control import control
from pm_arb_tasks.sim.feeds import binance, coinbase, coingecko
from pm_arb_tasks.sim.gamma import gamma
from pm_arb_tasks.sim.pushover import pushover
from pm_arb_tasks.sim.scenario import Scenario

log = logging.getLogger(__name__)
VENUE_MODULE = "pm_arb_tasks.sim.clob_orders"


def create_app(scenario: Scenario) -> Flask:
    app = Flask("pm_arb_tasks.sim")
    app.extensions[EXTENSION] = scenario
    for blueprint in (binance, coinbase, coingecko, gamma, clob, pushover, control):
        app.register_blueprint(blueprint)
    try:
        venue = importlib.import_module(VENUE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != VENUE_MODULE:
            raise
        log.warning("simulator: %s not found, order endpoints are not served", VENUE_MODULE)
    else:
        venue.register(app, scenario)
    return app


class _KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 (chunked replies), no per-request log line at INFO, and header names with
    underscores passed on: werkzeug drops them (a guard for servers behind proxies), but the
    CLOB's auth headers (POLY_ADDRESS, POLY_SIGNATURE, ...) are exactly such names.

    Not keep-alive: werkzeug closes every connection after its response (and drains the socket
    in a way that would swallow a next request), so each client call here pays a new TCP
    connection and a server thread, ~0.4 ms on loopback, which the real hosts' keep-alive spares
    a deployed worker. Latency figures measured against the simulator include that.
    """

    protocol_version = "HTTP/1.1"

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ[f"HTTP_{key.upper().replace('-', '_')}"] = value.strip()
        return environ

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            super().log_request(*args, **kwargs)


class SimServer:
    """A started simulator: `url`, `scenario`, `stop()`; runs in a daemon thread."""

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.app = create_app(scenario)
        self._server: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=_KeepAliveHandler
        )
        self.host, self.port = host, self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="pm-arb-sim", daemon=True)

    def start(self) -> SimServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def running_sim(
    seed: int = 1, port: int = 0, scenario: Scenario | None = None, **scenario_args: Any
) -> Iterator[SimServer]:
    """A simulator on 127.0.0.1 (port 0: an ephemeral one) for the duration of the block."""
    with SimServer(scenario or Scenario(seed, **scenario_args), port=port) as server:
        yield server


def serve(host: str = "127.0.0.1", port: int = 8900, seed: int = 1) -> None:
    """Serve until interrupted (`python -m pm_arb_tasks.sim`, `pm-arb sim`)."""
    server = SimServer(Scenario(seed), host=host, port=port)
    print(f"pm-arb simulator on {server.url} (seed {seed}); log: {server.url}/sim/log", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
