"""The simulator in a process of its own, as a real upstream is.

Why: run in the driver's process, the simulator's HTTP threads shared one interpreter with the
driver loop and the event capture and waited for its GIL, a wait that is neither the upstream's
nor ours but sat inside tick-to-order as counted from the poll's clock reading (the oracle reply
took 6.3 ms at p50 in the run of 2026-12-01 20:05, 5.5 ms in its own process at 21:10).

The driver reaches it through `SimProcess`: the same calls as before (`scenario.set_spot`,
`scenario.list_opportunity`, the oracle and venue clocks), each a message over a pipe to the
child's command loop, never on the measured path (the spot is set before the poll is sent, the
clocks are read after the order). The hooks that stamp the oracle's replies and the venue's
order receipts (`OracleClock`, `VenueClock`) run in the child, on its Flask app; product code is
untouched.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

ORACLE_PATH = "/api/v3/ticker/price"  # the batched Binance call the poll makes first
ORDER_PATH = "/order"  # the CLOB's POST of a signed order
START_SECONDS = 60.0  # a spawned interpreter imports Flask, the simulator and its scenario


class OracleClock:
    """When the simulator's reply to each oracle request left it: splits the poll into the
    upstream's reply time (which a real oracle would set) and our own work. The stamp is taken
    when the HTTP server has written the whole response to the socket (the response's close), so
    the server's own serialising and writing is counted as the upstream's, as it would be for a
    real oracle."""

    def __init__(self, sim_app: Any):
        self.replies: list[float] = []
        sim_app.after_request(self._after)

    def _after(self, response: Any) -> Any:
        from flask import request

        if request.path == ORACLE_PATH:
            response.call_on_close(lambda: self.replies.append(time.time()))
        return response

    def reply_after(self, t0: float) -> float:
        """The first oracle reply sent at or after `t0` (NaN when none)."""
        return next((t for t in reversed(self.replies) if t >= t0), math.nan)


class VenueClock:
    """When the simulator received each `POST /order`, and whether it filled that order.

    The live series' end point. The hook runs when the simulator's HTTP thread starts on the
    request (line and headers read, before the body is parsed): after the executor's send and one
    loopback crossing, so it is a little late rather than early.
    """

    def __init__(self, sim_app: Any):
        self.posts: list[tuple[float, bool]] = []  # (received at, filled), in arrival order
        self._cond = threading.Condition()
        sim_app.before_request(self._received)
        sim_app.after_request(self._answered)

    def _received(self) -> None:
        from flask import g, request

        if request.method == "POST" and request.path == ORDER_PATH:
            g.bench_received = time.time()

    def _answered(self, response: Any) -> Any:
        from flask import g

        received = g.pop("bench_received", None)
        if received is not None:
            body = response.get_json(silent=True)
            filled = response.status_code == 200 and isinstance(body, dict) and body.get("status") == "matched"
            with self._cond:
                self.posts.append((received, filled))
                self._cond.notify_all()
        return response

    def mark(self) -> int:
        with self._cond:
            return len(self.posts)

    def wait(self, mark: int, timeout: float) -> tuple[float, bool] | None:
        """The first post after `mark` (a 401 re-post is the same order leaving a second time)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.posts) > mark, timeout):
                return None
            return self.posts[mark]


def _serve(conn: Connection, port: int, scenario_args: dict[str, Any]) -> None:
    """The child: the simulator with its clocks, answering the driver's calls until told to stop."""
    from bench.universe import VenueScenario
    from pm_arb_tasks.sim import running_sim

    scenario = VenueScenario(**scenario_args)
    with running_sim(port=port, scenario=scenario) as sim:
        # The hooks go in before the first request (the live executor's start-up check).
        oracle, venue = OracleClock(sim.app), VenueClock(sim.app)
        calls: dict[str, Callable[..., Any]] = {
            "set_spot": scenario.set_spot, "list_opportunity": scenario.list_opportunity,
            "reply_after": oracle.reply_after, "mark": venue.mark, "wait": venue.wait,
        }
        conn.send(("ready", None))
        while True:
            try:
                name, args = conn.recv()
            except EOFError:  # the driver is gone
                return
            if name == "stop":
                return
            try:
                conn.send(("ok", calls[name](*args)))
            except Exception as exc:  # the driver raises it; the simulator keeps serving
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class SimProcess:
    """The driver's handle on the simulator's process (a context manager).

    `scenario` (set_spot, list_opportunity), `oracle` (reply_after) and `venue` (mark, wait) stand
    in for the objects that used to live in the driver's process, with the same calls.
    """

    def __init__(self, port: int, **scenario_args: Any):
        self.url = f"http://127.0.0.1:{port}"
        self._port, self._scenario_args = port, scenario_args
        self._lock = threading.Lock()  # one call on the pipe at a time
        self._conn: Connection | None = None
        self._proc: Any = None
        self.scenario, self.oracle, self.venue = _Scenario(self), _Oracle(self), _Venue(self)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __enter__(self) -> SimProcess:
        # spawn, not fork: the driver already runs threads (event capture) a fork would copy mid-step
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        self._proc = context.Process(
            target=_serve, args=(theirs, self._port, self._scenario_args), name="bench-simulator", daemon=True
        )
        self._proc.start()
        theirs.close()
        self._conn = ours
        try:
            if not ours.poll(START_SECONDS):
                raise TimeoutError(f"the simulator's process did not start in {START_SECONDS:.0f} s")
            ours.recv()
        except EOFError:
            self.__exit__(None, None, None)
            raise RuntimeError(f"the simulator's process exited at start-up (code {self._proc.exitcode})") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):  # the child already gone
                self._conn.send(("stop", ()))
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)

    def call(self, name: str, *args: Any) -> Any:
        if self._conn is None:
            raise RuntimeError("the simulator's process is not running")
        with self._lock:
            self._conn.send((name, args))
            status, value = self._conn.recv()
        if status == "error":
            raise RuntimeError(f"simulator {name}: {value}")
        return value


class _Remote:
    """A stand-in for an object that lives in the simulator's process: each method is one call."""

    def __init__(self, sim: SimProcess):
        self._sim = sim


class _Scenario(_Remote):
    def set_spot(self, symbol: str, price: Decimal) -> None:
        self._sim.call("set_spot", symbol, price)

    def list_opportunity(self, k: int, resolves_at: datetime) -> tuple[str, str]:
        return tuple(self._sim.call("list_opportunity", k, resolves_at))  # type: ignore[return-value]


class _Oracle(_Remote):
    def reply_after(self, t0: float) -> float:
        return float(self._sim.call("reply_after", t0))


class _Venue(_Remote):
    def mark(self) -> int:
        return int(self._sim.call("mark"))

    def wait(self, mark: int, timeout: float) -> tuple[float, bool] | None:
        found = self._sim.call("wait", mark, timeout)
        return None if found is None else (found[0], found[1])
