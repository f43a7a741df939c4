"""Kill-switch latency: `pm-arb stop` while requests flow, then the last order that still left.

Ticks are sent every `interval` seconds without waiting for their orders (several requests in
the pipeline at once). After `lead_in` seconds, `kill_switch.stop()` (what `pm-arb stop` calls)
runs in this process; ticks keep coming for `tail` seconds, then every order the paper venue
logged is read. The latency is `last order at - stop returned` (negative: the last order left
before `stop` returned); the count of orders after `stop` was called shows how many were in
flight (the goal: at most the one already past the halt check).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime

from bench.pipeline import ProductDriver
from pm_arb_tasks.services import kill_switch
from pm_arb_tasks.services.paper_venue import PAPER_ORDER_LOG
from pm_arb_tasks.state.redis_client import get_redis


@dataclass(frozen=True)
class KillSwitchResult:
    ticks: int
    orders_before: int
    orders_after_call: int  # orders whose venue call came after stop() was called
    orders_after_return: int  # ... after stop() returned
    stop_seconds: float  # how long stop() took (halt flag, consumer broadcast, alert)
    latency: float  # last order at - stop returned (seconds; <= 0 when none left after)
    acknowledged: tuple[str, ...]


def measure(driver: ProductDriver, interval: float, lead_in: float, tail: float) -> KillSwitchResult:
    redis = get_redis()
    redis.delete(PAPER_ORDER_LOG)
    ticks = 0
    started = time.monotonic()
    while time.monotonic() - started < lead_in:
        driver.tick()
        ticks += 1
        time.sleep(interval)
    called = time.time()
    report = kill_switch.stop("benchmark: kill-switch latency")
    returned = time.time()
    resumed = time.monotonic()
    while time.monotonic() - resumed < tail:
        driver.tick()
        ticks += 1
        time.sleep(interval)
    time.sleep(2.0)  # the last ticks' chains run to the halt check (or expire)
    times = [datetime.fromisoformat(json.loads(raw)["at"]).timestamp() for raw in redis.lrange(PAPER_ORDER_LOG, 0, -1)]
    last = max(times, default=called)
    return KillSwitchResult(
        ticks=ticks,
        orders_before=sum(t <= called for t in times),
        orders_after_call=sum(t > called for t in times),
        orders_after_return=sum(t > returned for t in times),
        stop_seconds=returned - called,
        latency=last - returned,
        acknowledged=report.workers,
    )
