"""Tick-to-order on the product stacks (paper and live), and the same hops on the bare-Celery and bare-Redis floors.

Everything here runs in the bench's driver process, with the environment already pointed at the
bench stores (see `bench.services.point_here`), while the workers run in their own processes.

Product, one opportunity: store market k, set the simulator's spot, send `pm_arb.oracle.poll`
to the oracle worker exactly as beat does; the poll observes the new price (tick time = the
poll's clock reading, `Tick.observed_at`, which the request carries as `tick_at`), the scan
emits one request, the chain runs, and the paper venue appends `{"order_id", "at"}` to its order
log at the venue call. tick-to-order = at - tick_at. The driver waits for the whole chain
(persist and alert included) to finish before the next tick, so every sample is an unloaded
latency, like the floor's.

Live, one opportunity: the same on a second product stack with PAPER_TRADING=false, on a Redis
database and a schema of its own (its queues must not meet the paper stack's), whose executor
reads the token's book and our collateral from the simulator's CLOB, signs a V2 order with
py-clob-client-v2 and posts it there. The end point is the moment the simulator received that
`POST /order` (`VenueClock`, a hook on its Flask app in the simulator's own process,
`bench.sim_process`): the signed order has left
the executor and crossed loopback, which the paper venue's `at` does not include; the venue's
matching and its reply come after it and are not counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import redis
from celery import Celery
from celery.utils.nodenames import host_format

from bench import floor_app, relay
from bench.events import EventLog, TaskTrace
from bench.procs import Memory, Proc, celery_argv, cpu_seconds, memory_of, node_name, procfile, stop_all
from bench.services import BenchRedis, RedisDbs, pointed_at
from bench.sim_process import SimProcess
from bench.universe import SYMBOL, Universe, spot_after
from pm_arb_tasks.celery_app import make_app
from pm_arb_tasks.services.paper_venue import PAPER_ORDER_LOG
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state import market_data

log = logging.getLogger("bench")
POLL_TASK = "pm_arb.oracle.poll"
# Every worker of the Procfile but beat and flower; the floor runs the same lines (queues included).
WORKERS = ("oracle", "markets", "scan", "risk", "execute", "persist")
CHAIN_TASKS = 6  # poll, scan, risk, execute, persist, alert
STAGES = ("poll→scan", "scan", "scan→risk", "risk", "risk→execute", "execute→venue")
HOPS = ("scan", "risk", "execute")  # the tasks whose broker hop and pool hand-off are shown


@dataclass
class Sample:
    """One opportunity (or floor chain): total seconds, per-stage seconds, per-hop seconds."""

    total: float
    stages: dict[str, float] = field(default_factory=dict)
    hops: dict[str, float] = field(default_factory=dict)  # "<queue> hop", "<queue> hand-off"


def _by_queue(traces: list[TaskTrace]) -> dict[str, TaskTrace] | None:
    """One task per queue, or None when the chain is not the expected single line."""
    found: dict[str, TaskTrace] = {}
    for trace in traces:
        if trace.queue in found:
            return None
        found[trace.queue] = trace
    return found if all(q in found for q in ("scan", "risk", "execute")) else None


def breakdown(t0: float, at: float, traces: list[TaskTrace]) -> Sample:
    """Stage boundaries: the next task's `task-received` and the following hop's `task-sent`."""
    sample = Sample(at - t0)
    by_queue = _by_queue(traces)
    if by_queue is None:
        return sample
    scan, risk, exe = by_queue["scan"], by_queue["risk"], by_queue["execute"]

    def t(trace: TaskTrace, kind: str) -> float:
        return trace.times.get(f"task-{kind}", math.nan)

    sample.stages = {
        "poll→scan": t(scan, "received") - t0,
        "scan": t(risk, "sent") - t(scan, "received"),
        "scan→risk": t(risk, "received") - t(risk, "sent"),
        "risk": t(exe, "sent") - t(risk, "received"),
        "risk→execute": t(exe, "received") - t(exe, "sent"),
        "execute→venue": at - t(exe, "received"),
    }
    for queue in HOPS:
        trace = by_queue[queue]
        sample.hops[f"{queue}: broker hop (sent→received)"] = t(trace, "received") - t(trace, "sent")
        sample.hops[f"{queue}: pool hand-off (received→started)"] = t(trace, "started") - t(trace, "received")
        sample.hops[f"{queue}: task body (runtime)"] = trace.runtime if trace.runtime is not None else math.nan
    return sample


@dataclass(frozen=True)
class Workers:
    """One set of the Procfile's worker lines on one broker: a product stack (paper or live) or the floor."""

    name: str  # the prefix of its processes' labels, and the name of the series it serves
    app: Celery  # on the same broker: pings the workers, captures their task events, sends the first task
    env: dict[str, str]
    app_arg: str | None = None  # `-A` in place of the Procfile's (the floor's no-op app)
    node_prefix: str = ""  # distinct node names per stack, to read logs and ping replies apart


def app_on(broker_url: str) -> Celery:
    """The product's own app (`make_app`: the same configuration) on another broker: how the driver
    reaches the live stack while `pm_arb_tasks.celery_app.app` stays on the paper one."""
    app = make_app()
    app.conf.update(broker_url=broker_url, redbeat_redis_url=broker_url)
    return app


class Stack:
    """The worker sets (product stacks and floor) and the relay processes of one run."""

    def __init__(
        self, env: dict[str, str], workers: Sequence[Workers], redis_server: BenchRedis, dbs: RedisDbs,
        run_dir: Path, pool: str | None = None,
    ):
        """`env`: the relay processes'; `pool` overrides every worker's pool alike (a what-if run)."""
        self.redis_server, self.dbs, self.run_dir = redis_server, dbs, run_dir
        self.workers = {w.name: w for w in workers}
        self.procs: dict[str, Proc] = {}
        lines = procfile()
        for w in workers:
            for name in WORKERS:
                argv = celery_argv(lines[name], app=w.app_arg, node_prefix=w.node_prefix, pool=pool)
                self._add(f"{w.name} {name}", argv, w.env)
        for index, stage in enumerate(relay.STAGES):
            url = redis_server.url(dbs.relay)
            argv = [sys.executable, "-m", "bench.relay", "--url", url, "--stage", str(index)]
            self._add(f"relay {stage}", argv, env)
        self.events = {w.name: EventLog(w.app) for w in workers}

    def _add(self, label: str, argv: list[str], env: dict[str, str]) -> None:
        log_path = self.run_dir / f"{label.replace(' ', '-')}.log"
        self.procs[label] = Proc(label, argv, env, log_path)

    def nodes(self, name: str) -> list[str]:
        """The node-name prefixes (`oracle@`, ...) of one worker set."""
        found = (node_name(p.argv) for label, p in self.procs.items() if label.startswith(f"{name} "))
        return [n for n in found if n]

    def start(self, timeout: float = 180) -> None:
        for events in self.events.values():
            events.start()
        for proc in self.procs.values():
            proc.start(self.run_dir)
        deadline = time.monotonic() + timeout
        for name, w in self.workers.items():
            _wait_ping(w.app, self.nodes(name), deadline, self)
        for name, events in self.events.items():
            events.wait_workers(self.nodes(name), max(deadline - time.monotonic(), 1))

    def check_alive(self) -> None:
        dead = [p for p in self.procs.values() if not p.alive()]
        if dead:
            raise RuntimeError("".join(f"\n{p.label} exited; log tail:\n{p.log_tail()}" for p in dead))

    def _labelled(self, prefix: str) -> dict[str, Proc]:
        return {label: p for label, p in self.procs.items() if label.startswith(f"{prefix} ") and p.alive()}

    def cpu(self, prefix: str) -> dict[str, float]:
        """CPU seconds used so far by each process (and its children) of the set `prefix`."""
        return {label: cpu_seconds(p.pid) for label, p in self._labelled(prefix).items()}

    def memory(self, prefix: str) -> list[Memory]:
        return [memory_of(label, p.pid) for label, p in self._labelled(prefix).items()]

    def stop(self) -> None:
        stop_all(list(self.procs.values()))
        for events in self.events.values():
            events.stop()


def _wait_ping(app: Any, prefixes: list[str], deadline: float, stack: Stack) -> None:
    wanted = {host_format(f"{p}%h", hostname=socket.gethostname()) for p in prefixes}
    while True:
        stack.check_alive()
        replies = app.control.ping(timeout=1.0) or []
        answered = {name for reply in replies for name in reply}
        if wanted <= answered:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers {sorted(wanted - answered)} did not answer ping")


class PaperOrders:
    """The paper venue's order log: the `at` the paper venue stamps at its venue call."""

    def __init__(self, client: redis.Redis):
        self.client = client

    def mark(self) -> int:
        return 0  # every entry is popped, so the next one is the next order's

    def wait(self, mark: int, timeout: float) -> tuple[float, bool] | None:
        found = self.client.blpop([PAPER_ORDER_LOG], timeout=timeout)
        if found is None:
            return None
        return datetime.fromisoformat(json.loads(found[1])["at"]).timestamp(), True  # it logs filled orders only


class OrderEnd(Protocol):
    """Where a product series' orders end: `wait` returns (epoch seconds, filled) of the next order."""

    def mark(self) -> int: ...

    def wait(self, mark: int, timeout: float) -> tuple[float, bool] | None: ...


class Driver:
    """One series: `one()` runs one opportunity (or chain) and returns its sample, None if it missed."""

    misses = 0

    def active(self) -> AbstractContextManager[None]:
        """Around each of the series' blocks: what the driver process must point at meanwhile."""
        return contextlib.nullcontext()

    def one(self) -> Sample | None:
        raise NotImplementedError


class ProductDriver(Driver):
    """Scripted ticks through one product stack, one opportunity at a time (see the module docstring).

    `venue`: list each opportunity on the simulated venue too (the live series, whose executor
    trades there). Everything it does through the product's modules (seeding, reading the tick)
    happens inside `active()`, pointed at its stack's stores.
    """

    def __init__(
        self, stack: Stack, workers: Workers, sim: SimProcess, markets: int, orders: OrderEnd, venue: bool = False
    ):
        self.stack, self.workers, self.scenario = stack, workers, sim.scenario
        self.oracle, self.orders = sim.oracle, orders
        self.events = stack.events[workers.name]
        self.k = 0
        self.misses = 0
        self.irregular = 0  # chains that did not have exactly one task per stage
        self.unfilled = 0  # orders the venue did not fill (the sample still counts: the order left)
        with self.active():
            now = datetime.now(UTC)
            self.universe = Universe(markets, now, venue=sim.scenario if venue else None)
            self.universe.seed_history(now)
        self.scenario.set_spot(SYMBOL, spot_after(-1))

    def active(self) -> AbstractContextManager[None]:
        return pointed_at(self.workers.env)

    def tick(self) -> str:
        """Seed the next opportunity, move the spot, send the poll; returns the poll's task id."""
        k = self.k
        self.k += 1
        self.universe.add(k, datetime.now(UTC))
        self.scenario.set_spot(SYMBOL, spot_after(k))
        return self.workers.app.send_task(POLL_TASK, expires=get_settings().oracle_poll_seconds).id

    def one(self) -> Sample | None:
        mark = self.orders.mark()
        poll_id = self.tick()
        found = self.orders.wait(mark, timeout=get_settings().trade_ttl_seconds + 5)
        complete = self.events.wait_chain(poll_id, CHAIN_TASKS, timeout=15)
        if found is None:
            scans = [t.result for t in self.events.chain(poll_id) if t.queue == "scan"]
            log.warning(
                "bench: %s tick %d gave no order (scan reported %s)", self.workers.name, self.k - 1, scans or "nothing"
            )
            self.misses += 1
            self.stack.check_alive()
            return None
        at, filled = found
        if not filled:
            self.unfilled += 1
            log.warning("bench: %s tick %d: the venue did not fill the order", self.workers.name, self.k - 1)
        tick = market_data.latest_tick(SYMBOL)
        assert tick is not None
        t0 = tick.observed_at.timestamp()
        traces = self.events.chain(poll_id)
        sample = breakdown(t0, at, traces)
        if not complete or not sample.stages:
            self.irregular += 1
            return sample
        reply = self.oracle.reply_after(t0)
        scan = next(t for t in traces if t.queue == "scan")
        sample.stages["poll: oracle reply"] = reply - t0
        sample.stages["poll: reply to the scan sent"] = scan.times.get("task-sent", math.nan) - reply
        sample.stages["from the oracle reply"] = at - reply
        return sample


class FloorDriver(Driver):
    """The same chain shape with no-op tasks (bench.floor_app) on identically configured workers;
    `io`: on the same workers, with the order path's required round trips (`floor_app`)."""

    def __init__(self, stack: Stack, redis_server: BenchRedis, dbs: RedisDbs, io: bool = False):
        self.stack = stack
        self.events = stack.events["floor"]
        self.app = stack.workers["floor"].app
        self.redis = redis_server.client(dbs.floor)
        self.io = io
        self.k = 0
        self.misses = 0
        self.irregular = 0
        if io:
            self.redis.set(floor_app.FLOOR_TICK, json.dumps({"symbol": "BTC", "price": "70000.5", "at": time.time()}))

    def one(self) -> Sample | None:
        self.k += 1
        poll_id = self.app.send_task(floor_app.POLL, args=[str(self.k), self.io], expires=1.0).id
        found = self.redis.blpop([floor_app.FLOOR_ORDERS], timeout=10)
        complete = self.events.wait_chain(poll_id, CHAIN_TASKS, timeout=15)
        if found is None:
            self.misses += 1
            return None
        entry = json.loads(found[1])
        sample = breakdown(entry["t0"], entry["at"], self.events.chain(poll_id))
        if not complete or not sample.stages:
            self.irregular += 1
        return sample


class RelayDriver(Driver):
    """LPUSH/BRPOP across the four relay processes."""

    def __init__(self, redis_server: BenchRedis, dbs: RedisDbs):
        self.redis = redis_server.client(dbs.relay)
        self.k = 0
        self.misses = 0

    def one(self) -> Sample | None:
        self.k += 1
        self.redis.lpush(relay.stage_key(0), json.dumps({"id": self.k}))
        found = self.redis.brpop([relay.DONE], timeout=10)
        if found is None:
            self.misses += 1
            return None
        message = json.loads(found[1])
        return Sample(message["at"] - message["t0"])
