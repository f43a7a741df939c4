"""The hot path, stage by stage, in this process: time, Redis and database round trips, profile.

The same use cases the tasks call (`poll_oracles`, `scan`, `guardian.review`, `execution.execute`,
`outcomes.record`, `alerts.alert_for_outcome`), on the same Redis database, PostgreSQL schema and
simulator as the paper series of the running stacks, with the same scripted opportunities; no
Celery in between. Redis and SQL are counted by wrapping the client libraries (redis-py,
SQLAlchemy events) in this process, so product code stays untouched:

- Redis round trips: one per plain command, one per pipeline (`commands` counts what it carried);
- database round trips: the pool's pings (a connection idle for a second is pinged at checkout)
  + BEGINs + statements + COMMITs (psycopg2 sends BEGIN on its own before a transaction's first
  statement; a risk review sends its own inside its statements);
- SQL compiles: statements SQLAlchemy compiled again because its statement cache could not serve
  them (after the warm-up, each is a statement that can never be cached).
"""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.engine.interfaces import CacheStats

from bench.pipeline import ProductDriver
from bench.universe import SYMBOL, spot_after
from pm_arb_tasks.db.session import get_autocommit_engine, get_engine
from pm_arb_tasks.domain.models import ExecutionResult, RiskDecision, Tick, TradeRequest
from pm_arb_tasks.risk import guardian
from pm_arb_tasks.services import alerts, execution, marketdata, outcomes, scanning
from pm_arb_tasks.services.paper_venue import PAPER_ORDER_LOG, PaperVenue
from pm_arb_tasks.state.redis_client import get_redis

STAGES = ("poll", "scan", "risk", "execute→venue", "execute after venue", "persist", "alert")


class Counters:
    """Round trips per stage, fed by the wrappers below while `stage` is set."""

    def __init__(self) -> None:
        self.stage = ""
        self.counts: dict[str, Counter[str]] = defaultdict(Counter)
        self.sql_seconds: dict[str, Counter[str]] = defaultdict(Counter)  # stage -> statement -> seconds
        self.sql_calls: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, what: str, n: int = 1) -> None:
        if self.stage:
            self.counts[self.stage][what] += n

    def statement(self, sql: str, seconds: float) -> None:
        if self.stage:
            key = " ".join(sql.split())[:90]
            self.sql_seconds[self.stage][key] += seconds
            self.sql_calls[self.stage][key] += 1


@contextmanager
def instrumented(counters: Counters) -> Iterator[None]:
    """Count Redis and SQL round trips in this process for the duration of the block."""
    plain, piped = redis.Redis.execute_command, redis.client.Pipeline.execute

    def execute_command(self: redis.Redis, *args: Any, **options: Any) -> Any:
        counters.add("redis round trips")
        counters.add("redis commands")
        return plain(self, *args, **options)

    def execute(self: Any, raise_on_error: bool = True) -> Any:
        if self.command_stack:  # an empty pipeline sends nothing
            counters.add("redis round trips")
            counters.add("redis commands", len(self.command_stack))
        return piped(self, raise_on_error)

    # Transactions run on the main engine, one-statement steps (claim, halt read) on the autocommit
    # one; with SQLite both share one pool, whose events the option engine inherits.
    engines = [get_engine()]
    if get_autocommit_engine().pool is not engines[0].pool:
        engines.append(get_autocommit_engine())

    def before(conn: Any, cursor: Any, statement: str, *args: Any, **kwargs: Any) -> None:
        counters.add("sql statements")
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, *args: Any) -> None:
        counters.statement(statement, time.perf_counter() - conn.info.pop("bench_started", time.perf_counter()))
        if getattr(context, "cache_hit", None) in (CacheStats.CACHE_MISS, CacheStats.NO_CACHE_KEY):
            counters.add("sql compiles")  # SQLAlchemy compiled the statement again (not cached)

    listeners: list[tuple[Any, str, Callable[..., None]]] = [
        (engines[0], "begin", lambda *a, **k: counters.add("sql begin")),  # autocommit: never sent
        (engines[0], "commit", lambda *a, **k: counters.add("sql commit")),
    ]
    for engine in engines:
        listeners += [
            (engine, "before_cursor_execute", before),
            (engine, "after_cursor_execute", after),
        ]
    dialects = {id(engine.dialect): engine.dialect for engine in engines}.values()
    pings = [(dialect, dialect.do_ping) for dialect in dialects]

    def pinging(real: Callable[[Any], bool]) -> Callable[[Any], bool]:
        def ping(dbapi_conn: Any) -> bool:
            counters.add("sql ping")
            return real(dbapi_conn)

        return ping

    redis.Redis.execute_command = execute_command  # type: ignore[method-assign]
    redis.client.Pipeline.execute = execute  # type: ignore[method-assign]
    for dialect, real in pings:
        dialect.do_ping = pinging(real)  # type: ignore[method-assign]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield
    finally:
        redis.Redis.execute_command = plain  # type: ignore[method-assign]
        redis.client.Pipeline.execute = piped  # type: ignore[method-assign]
        for dialect, real in pings:
            dialect.do_ping = real  # type: ignore[method-assign]
        for target, name, fn in listeners:
            event.remove(target, name, fn)


class _StampingVenue:
    """The paper venue, calling `on_submit` when the executor hands it the order (the end of
    tick-to-order), so that what follows is measured as "execute after venue"."""

    def __init__(self, on_submit: Callable[[], None]) -> None:
        self.inner = PaperVenue()
        self.mode = self.inner.mode
        self.on_submit = on_submit

    def prepare(self, request: TradeRequest, now: datetime) -> Any:
        return self.inner.prepare(request, now)

    def submit(self, request: TradeRequest, order: Any, now: datetime) -> ExecutionResult:
        self.on_submit()
        return self.inner.submit(request, order, now)

    def recover(self, request: TradeRequest, order_hash: str | None, now: datetime) -> ExecutionResult:
        return self.inner.recover(request, order_hash, now)


@dataclass
class HotPath:
    iterations: int
    ms: dict[str, float]  # median per stage
    per_op: dict[str, dict[str, float]]  # stage -> counter -> per opportunity
    top: dict[str, list[tuple[str, float, float]]]  # stage -> (function, self µs per op, calls per op)
    ours: dict[str, list[tuple[str, float, float]]]  # stage -> (product function, cumulative µs per op, calls per op)
    sql: dict[str, list[tuple[str, float, float]]]  # stage -> (statement, µs per op, calls per op)
    serialisation: list[tuple[str, int, float, float]] = field(default_factory=list)  # name, bytes, dump µs, load µs
    round_trips: dict[str, float] = field(default_factory=dict)  # what -> median µs


def _utcnow() -> datetime:
    return datetime.now(UTC)


def profile(driver: ProductDriver, iterations: int, warmup: int, top: int = 8) -> HotPath:
    """Run `warmup + iterations` scripted opportunities through the use cases, measuring the last ones."""
    counters = Counters()
    profiles = {stage: cProfile.Profile() for stage in STAGES}
    times: dict[str, list[float]] = defaultdict(list)
    current: list[Any] = []  # [stage, started] while measuring

    def begin(name: str) -> None:
        current[:] = [name, time.perf_counter()]
        counters.stage = name
        profiles[name].enable()

    def end() -> None:
        if current:
            name, started = current
            profiles[name].disable()
            times[name].append(time.perf_counter() - started)
            counters.stage = ""
            current.clear()

    def at_venue() -> None:
        if current:
            end()
            begin("execute after venue")

    @contextmanager
    def stage(name: str, measuring: bool) -> Iterator[None]:
        if measuring:
            begin(name)
        try:
            yield
        finally:
            end()

    venue = _StampingVenue(at_venue)
    with instrumented(counters):
        for i in range(warmup + iterations):
            measuring = i >= warmup
            k = driver.k
            driver.k += 1
            driver.universe.add(k, _utcnow())
            driver.scenario.set_spot(SYMBOL, spot_after(k))
            tick_at = _utcnow()
            sent: list[Tick] = []
            with stage("poll", measuring):
                moved = marketdata.poll_oracles(tick_at, send=sent.extend)
            captured: list[TradeRequest] = []
            with stage("scan", measuring):
                scanning.scan(moved, _utcnow(), tick_at=tick_at, ticks=sent, send=captured.append)
            if len(captured) != 1:
                raise RuntimeError(f"hot path: tick {k} produced {len(captured)} requests, expected 1")
            with stage("risk", measuring):
                decision = guardian.review(captured[0], _utcnow())
            with stage("execute→venue", measuring):  # switches to "execute after venue" at the venue call
                result = execution.execute(decision, venue, _utcnow)
            assert result is not None
            with stage("persist", measuring):
                outcomes.record(result)
            with stage("alert", measuring):
                alerts.alert_for_outcome(result)
    get_redis().delete(PAPER_ORDER_LOG)
    return HotPath(
        iterations=iterations,
        ms={name: _median(times[name]) * 1000 for name in STAGES},
        per_op={name: {what: n / iterations for what, n in sorted(counters.counts[name].items())} for name in STAGES},
        top={name: _top(profiles[name], iterations, top) for name in STAGES},
        ours={name: _top(profiles[name], iterations, top, ours=True) for name in STAGES},
        sql={
            name: sorted(
                ((stmt, sec / iterations * 1e6, counters.sql_calls[name][stmt] / iterations)
                 for stmt, sec in counters.sql_seconds[name].items()),
                key=lambda row: row[1], reverse=True,
            )[:top]
            for name in STAGES
        },
        serialisation=serialisation(captured[0], decision, result),
        round_trips=round_trips(),
    )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else float("nan")


def _top(prof: cProfile.Profile, iterations: int, n: int, ours: bool = False) -> list[tuple[str, float, float]]:
    """The `n` functions with the most self time, or (`ours`) our own functions by cumulative time."""
    stats = pstats.Stats(prof)
    rows = []
    for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("site-packages/")[-1].split("/main/")[-1]
        if ours and not short.startswith("pm_arb_tasks/"):
            continue
        rows.append((f"{short}:{line} {name}", (cumtime if ours else tottime) / iterations * 1e6, ncalls / iterations))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:n]


def serialisation(request: TradeRequest, decision: RiskDecision, result: ExecutionResult, loops: int = 2000):
    """What each chain message costs to encode and decode (pydantic + json, as the tasks do)."""
    out = []
    for name, model in (("TradeRequest", request), ("RiskDecision", decision), ("ExecutionResult", result)):
        cls = type(model)
        body = json.dumps(model.model_dump(mode="json"))
        started = time.perf_counter()
        for _ in range(loops):
            json.dumps(model.model_dump(mode="json"))
        dump = (time.perf_counter() - started) / loops
        started = time.perf_counter()
        for _ in range(loops):
            cls.model_validate(json.loads(body))
        load = (time.perf_counter() - started) / loops
        out.append((name, len(body), dump * 1e6, load * 1e6))
    return out


def round_trips(n: int = 300) -> dict[str, float]:
    """Median cost of one bare round trip from this process: what each counted trip costs at least."""
    from sqlalchemy import text

    from pm_arb_tasks.db.session import session_scope

    def median_us(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return _median(times) * 1e6

    engine = get_engine()
    with engine.connect() as conn:
        pg = median_us(lambda: conn.execute(text("SELECT 1")))

    def empty_transaction() -> None:
        with session_scope() as session:
            session.execute(text("SELECT 1"))

    return {
        "Redis PING": median_us(get_redis().ping),
        "PostgreSQL SELECT 1 on an open connection": pg,
        "session_scope() with one SELECT 1 (checkout + BEGIN + SELECT + COMMIT)": median_us(
            empty_transaction
        ),
    }
