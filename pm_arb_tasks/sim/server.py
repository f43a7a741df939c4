"""The simulator's app factory and a real threaded keep-alive HTTP server (cheroot) around it.

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

from cheroot import wsgi
from flask import Flask

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


class _Server(wsgi.Server):
    """cheroot's threaded WSGI server, logging through `logging` rather than to stderr."""

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        log.log(level, "simulator http: %s", msg, exc_info=traceback)


class SimServer:
    """A started simulator: `url`, `scenario`, `stop()`; serves from a daemon thread.

    Keep-alive, as the real hosts are: a client's session reuses its connection, so a call costs
    one request on a warm socket and a pooled thread, not a TCP handshake and a new thread (which
    the werkzeug development server this replaced paid on every call: it closes each connection
    after its response). The socket is bound here, so `url` is known before `start()`.

    `THREADS` bounds the requests answered at once; a request waiting on a scenario knob (a held
    order post, a reply delay) keeps its thread, so it is well above what tests hold at a time.
    Idle keep-alive connections wait in cheroot's selector, not on a thread, up to
    `IDLE_SECONDS`.
    """

    THREADS = 32
    IDLE_SECONDS = 60

    def __init__(self, scenario: Scenario, host: str = "127.0.0.1", port: int = 0) -> None:
        self.scenario = scenario
        self.app = create_app(scenario)
        # the app is called per request, so a test's middleware on `app.wsgi_app` still applies
        self._server = _Server((host, port), self.app, numthreads=self.THREADS, request_queue_size=128,
                               timeout=self.IDLE_SECONDS)  # fmt: skip
        self._server.keep_alive_conn_limit = None
        self._server.prepare()
        self.host, self.port = host, int(self._server.bind_addr[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve, name="pm-arb-sim", daemon=True)

    def start(self) -> SimServer:
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve from the calling thread until interrupted, then stop."""
        try:
            self._server.serve()
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.stop()
        if self._thread.is_alive():
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
    server.serve_forever()
