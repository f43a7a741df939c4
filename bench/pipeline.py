"""Tick-to-order on the product stack, and the same hops on the bare-Celery and bare-Redis floors.

Everything here runs in the bench's driver process, with the environment already pointed at the
bench stores (see `bench.services.point_here`), while the workers run in their own processes.

Product, one opportunity: store market k, set the simulator's spot, send `pm_arb.oracle.poll`
to the oracle worker exactly as beat does; the poll observes the new price (tick time = the
poll's clock reading, `Tick.observed_at`, which the request carries as `tick_at`), the scan
emits one request, the chain runs, and the paper venue appends `{"order_id", "at"}` to its order
log at the venue call. tick-to-order = at - tick_at. The driver waits for the whole chain
(persist and alert included) to finish before the next tick, so every sample is an unloaded
latency, like the floor's.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery.utils.nodenames import host_format

from bench import floor_app, relay
from bench.events import EventLog, TaskTrace
from bench.procs import Memory, Proc, celery_argv, cpu_seconds, memory_of, node_name, procfile, stop_all
from bench.services import BenchRedis, RedisDbs
from bench.universe import SYMBOL, Universe, spot_after
from pm_arb_tasks.celery_app import app as product_app
from pm_arb_tasks.services.paper_venue import PAPER_ORDER_LOG
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state import market_data

log = logging.getLogger("bench")
POLL_TASK = "pm_arb.oracle.poll"
# Every worker of the Procfile but beat and flower; the floor runs the same lines (queues included).
WORKERS = ("oracle", "markets", "scan", "risk", "execute", "persist")
CHAIN_TASKS = 6  # poll, scan, risk, execute, persist, alert
STAGES = ("poll→scan", "scan", "scan→risk", "risk", "risk→execute", "execute→venue")
ORACLE_PATH = "/api/v3/ticker/price"  # the batched Binance call the poll makes first
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


class Stack:
    """The product workers, the floor workers and the relay processes of one run."""

    def __init__(
        self, env: dict[str, str], redis_server: BenchRedis, dbs: RedisDbs, run_dir: Path, pool: str | None = None
    ):
        """`pool` overrides every worker's pool, product and floor alike (a what-if run)."""
        self.env, self.redis_server, self.dbs, self.run_dir = env, redis_server, dbs, run_dir
        self.procs: dict[str, Proc] = {}
        lines = procfile()
        for name in WORKERS:
            self._add(f"product {name}", celery_argv(lines[name], pool=pool))
        for name in WORKERS:
            argv = celery_argv(lines[name], app="bench.floor_app", node_prefix="floor-", pool=pool)
            self._add(f"floor {name}", argv)
        for index, stage in enumerate(relay.STAGES):
            url = redis_server.url(dbs.relay)
            self._add(f"relay {stage}", [sys.executable, "-m", "bench.relay", "--url", url, "--stage", str(index)])
        self.events = EventLog(product_app)
        self.floor_events = EventLog(floor_app.app)

    def _add(self, label: str, argv: list[str]) -> None:
        log_path = self.run_dir / f"{label.replace(' ', '-')}.log"
        self.procs[label] = Proc(label, argv, self.env, log_path)

    def start(self, timeout: float = 180) -> None:
        self.events.start()
        self.floor_events.start()
        for proc in self.procs.values():
            proc.start(self.run_dir)
        product = [node_name(p.argv) for label, p in self.procs.items() if label.startswith("product")]
        floor = [node_name(p.argv) for label, p in self.procs.items() if label.startswith("floor")]
        deadline = time.monotonic() + timeout
        _wait_ping(product_app, [n for n in product if n], deadline, self)
        _wait_ping(floor_app.app, [n for n in floor if n], deadline, self)
        self.events.wait_workers([n for n in product if n], max(deadline - time.monotonic(), 1))
        self.floor_events.wait_workers([n for n in floor if n], max(deadline - time.monotonic(), 1))

    def check_alive(self) -> None:
        dead = [p for p in self.procs.values() if not p.alive()]
        if dead:
            raise RuntimeError("".join(f"\n{p.label} exited; log tail:\n{p.log_tail()}" for p in dead))

    def cpu(self, prefix: str) -> dict[str, float]:
        """CPU seconds used so far by each process (and its children) whose label starts with `prefix`."""
        return {label: cpu_seconds(p.pid) for label, p in self.procs.items() if label.startswith(prefix) and p.alive()}

    def memory(self, prefix: str) -> list[Memory]:
        return [memory_of(label, p.pid) for label, p in self.procs.items() if label.startswith(prefix) and p.alive()]

    def stop(self) -> None:
        stop_all(list(self.procs.values()))
        self.events.stop()
        self.floor_events.stop()


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


class OracleClock:
    """When the simulator answered each oracle request: splits the poll into the upstream's reply
    time (which a real oracle would set) and our own work. Hooks the simulator's Flask app, which
    runs in this process; product code is untouched."""

    def __init__(self, sim_app: Any):
        self.replies: list[float] = []
        sim_app.after_request(self._after)

    def _after(self, response: Any) -> Any:
        from flask import request

        if request.path == ORACLE_PATH:
            self.replies.append(time.time())
        return response

    def reply_after(self, t0: float) -> float:
        """The first oracle reply sent at or after `t0` (NaN when none)."""
        return next((t for t in reversed(self.replies) if t >= t0), math.nan)


class ProductDriver:
    """Scripted ticks through the real stack, one opportunity at a time (see the module docstring)."""

    def __init__(self, stack: Stack, sim: Any, markets: int):
        self.stack, self.scenario = stack, sim.scenario
        self.oracle = OracleClock(sim.app)
        self.redis = stack.redis_server.client(stack.dbs.product)
        now = datetime.now(UTC)
        self.universe = Universe(markets, now)
        self.universe.seed_history(now)
        self.k = 0
        self.misses = 0
        self.irregular = 0  # chains that did not have exactly one task per stage
        self.scenario.set_spot(SYMBOL, spot_after(-1))

    def tick(self) -> str:
        """Seed the next opportunity, move the spot, send the poll; returns the poll's task id."""
        k = self.k
        self.k += 1
        self.universe.add(k, datetime.now(UTC))
        self.scenario.set_spot(SYMBOL, spot_after(k))
        return product_app.send_task(POLL_TASK, expires=get_settings().oracle_poll_seconds).id

    def one(self) -> Sample | None:
        poll_id = self.tick()
        found = self.redis.blpop([PAPER_ORDER_LOG], timeout=get_settings().trade_ttl_seconds + 5)
        complete = self.stack.events.wait_chain(poll_id, CHAIN_TASKS, timeout=15)
        if found is None:
            scans = [t.result for t in self.stack.events.chain(poll_id) if t.queue == "scan"]
            log.warning("bench: tick %d gave no order (scan reported %s)", self.k - 1, scans or "nothing")
            self.misses += 1
            self.stack.check_alive()
            return None
        entry = json.loads(found[1])
        at = datetime.fromisoformat(entry["at"]).timestamp()
        tick = market_data.latest_tick(SYMBOL)
        assert tick is not None
        t0 = tick.observed_at.timestamp()
        traces = self.stack.events.chain(poll_id)
        sample = breakdown(t0, at, traces)
        if not complete or not sample.stages:
            self.irregular += 1
            return sample
        reply = self.oracle.reply_after(t0)
        scan = next(t for t in traces if t.queue == "scan")
        sample.stages["poll: oracle reply"] = reply - t0
        sample.stages["poll: store ticks, send scan"] = scan.times.get("task-sent", math.nan) - reply
        sample.stages["from the oracle reply"] = at - reply
        return sample


class FloorDriver:
    """The same chain shape with no-op tasks (bench.floor_app) on identically configured workers."""

    def __init__(self, stack: Stack, redis_server: BenchRedis, dbs: RedisDbs):
        self.stack = stack
        self.redis = redis_server.client(dbs.floor)
        self.k = 0
        self.misses = 0
        self.irregular = 0

    def one(self) -> Sample | None:
        self.k += 1
        poll_id = floor_app.app.send_task(floor_app.POLL, args=[str(self.k)], expires=1.0).id
        found = self.redis.blpop([floor_app.FLOOR_ORDERS], timeout=10)
        complete = self.stack.floor_events.wait_chain(poll_id, CHAIN_TASKS, timeout=15)
        if found is None:
            self.misses += 1
            return None
        entry = json.loads(found[1])
        sample = breakdown(entry["t0"], entry["at"], self.stack.floor_events.chain(poll_id))
        if not complete or not sample.stages:
            self.irregular += 1
        return sample


class RelayDriver:
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
