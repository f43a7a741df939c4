"""The fault scenarios, each on a running rig (chaos/harness.py), each ending in one `Result` row.

Every scenario runs the whole Procfile stack against the simulator with opportunities flowing
(chaos/traffic.py), injects its fault mid-run, lets the pipeline settle and counts from the
venue's order log and the database (chaos/ledger.py). `Profile` holds the sizes: the full run
(`make chaos`) and the shortened one CI runs (tests/integration/test_chaos_quick.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select

from chaos import ledger, payloads
from chaos.harness import REDIS_DB, Rig
from chaos.ledger import Counts, Mark
from chaos.payloads import fuzz_environment
from chaos.traffic import Injector
from pm_arb_tasks.celery_app import app
from pm_arb_tasks.db.models import AlertRow, OpportunityRow, PaperTradeRow, RiskDecisionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.edge import Reason
from pm_arb_tasks.services.paper_venue import PAPER_ORDER_LOG
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.sim.scenario import Fault
from pm_arb_tasks.state.market_data import last_poll, tracked_token_ids
from pm_arb_tasks.state.redis_client import redis_for
from tests.support.stack import WORKERS
from tests.support.waiting import wait_for

DISCOVER = "pm_arb.markets.discover"
WATCHDOG = "pm_arb.ops.watchdog"
EXPIRED_AT_EXECUTE = "deadline passed before execution"
DB_WORDS = ("database", "postgres", "db ")
SCAN = "pm_arb.scan.symbols"
STALE_REASON = Reason.STALE.value
TRADE_QUEUES = ("scan", "risk", "execute", "persist", "alert")
LOAD_SENDERS = 4
NOT_WORKERS = ("flower",)  # keeps task history in memory by design (up to its --max-tasks): reported, not checked
DRAIN_LIMIT = 30.0  # seconds after the load stops
FUZZ_DB = 1  # the in-process fuzzing's database on the chaos Redis (the stack uses 0)


@dataclass(frozen=True)
class Profile:
    """How big each scenario is."""

    name: str
    rate: float = 3.0  # opportunities per second while a fault is injected (well below capacity)
    warmup: float = 8.0  # seconds of traffic before the fault
    after: float = 15.0  # seconds of traffic after the fault ends
    pg_outage: float = 30.0
    in_flight: int = 10  # approved requests on their way to the executor as the database goes
    kill_workers: tuple[str, ...] = WORKERS
    kill_rate: float = 5.0  # a busier executor: a SIGKILL more likely lands mid-task
    wait_for_beat_watchdog: bool = True  # False: send the watchdog pass right after the kill
    load_rate: float = 100.0
    load_seconds: float = 60.0
    malformed: int = 10_000  # served one by one to the adapters' entry points
    malformed_stack_cases: int = 40  # per adapter, rotated under the running stack
    malformed_stack_seconds: float = 60.0
    soak_seconds: float = 1800.0


FULL = Profile("full")
QUICK = Profile(
    "quick", warmup=3.0, after=3.0, pg_outage=8.0, in_flight=5, kill_workers=("execute", "persist"),
    wait_for_beat_watchdog=False, load_rate=15.0, load_seconds=6.0, malformed=300, malformed_stack_cases=5,
    malformed_stack_seconds=10.0,
)  # fmt: skip


@dataclass
class Result:
    scenario: str
    done: str
    times: int
    counts: Counts
    recovery: str = "-"
    notes: list[str] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        c = self.counts
        clean = c.duplicates == 0 and c.rows_lost == 0 and c.crashes == 0 and c.stale_orders == 0
        return clean and c.unrecorded_fills == 0 and all(self.checks.values())


# --- helpers ---------------------------------------------------------------------------------


def prime(rig: Rig) -> None:
    """Discovery once now (beat's first round comes 30 s after start) and one order end to end."""
    app.send_task(DISCOVER)
    wait_for(tracked_token_ids, timeout=60, interval=0.5, what="the first discovery round")
    probe = Injector(rate=2, limit=1).start()
    wait_for(lambda: probe.sent, timeout=20, what="the probe opportunity to be sent")
    wanted = f"paper-{probe.sent[0].request_id}"
    wait_for(lambda: any(o.order_id == wanted for o in ledger.order_log()), timeout=60, what="the probe order")
    probe.stop()


def reconnect_driver() -> None:
    """Drop this process's connections to a Redis that restarted (the workers reconnect themselves)."""
    app._after_fork()  # the broker connection and producer pools
    redis_for.cache_clear()


def broadcast(command: Callable[[], object]) -> object:
    """A control command, once more on fresh connections if the pooled one died with a restarted Redis."""
    try:
        return command()
    except (OSError, RedisError, KombuError):
        reconnect_driver()
        return command()


def first_order_after(injector: Injector, since: float, timeout: float) -> float | None:
    """Seconds from `since` (time.time()) to the first order of an opportunity sent after it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = {f"paper-{s.request_id}" for s in list(injector.sent) if s.at >= since}
        found = [o.at.timestamp() for o in ledger.order_log() if o.order_id in fresh]
        if found:
            return min(found) - since
        time.sleep(0.2)
    return None


def alerts_since(at: datetime, *needles: str) -> list[AlertRow]:
    """Alert rows created since `at` whose kind, title or message contains one of `needles`."""
    with session_scope() as session:
        query = select(AlertRow).where(AlertRow.created_at >= at).order_by(AlertRow.id)
        if needles:
            query = query.where(
                or_(*(c.ilike(f"%{n}%") for n in needles for c in (AlertRow.kind, AlertRow.title, AlertRow.message)))
            )
        return list(session.scalars(query))


def expired_counts(mark: Mark, injector: Injector) -> tuple[int, int]:
    """(discarded at execute, discarded before a risk decision) among the injected requests."""
    ids = [s.request_id for s in injector.sent]
    with session_scope() as session:
        at_execute = session.scalar(
            select(func.count()).select_from(PaperTradeRow).where(
                PaperTradeRow.request_id.in_(ids), PaperTradeRow.error_message == EXPIRED_AT_EXECUTE
            )
        ) or 0
        decided = session.scalar(
            select(func.count()).select_from(RiskDecisionRow).where(RiskDecisionRow.request_id.in_(ids))
        ) or 0
    return at_execute, len(ids) - decided


def seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f} s"


def traffic(rate: float) -> Injector:
    return Injector(rate).start()


# --- scenarios -------------------------------------------------------------------------------


def redis_restart(rig: Rig, profile: Profile) -> Result:
    """Shut Redis down (append-only file fsynced) and start it again with its data, mid-run."""
    mark = Mark.now(rig.stack)
    injector = traffic(profile.rate)
    time.sleep(profile.warmup)
    down_at = time.time()
    rig.redis.shutdown()
    up_at = rig.redis.start()
    reconnect_driver()
    resumed = first_order_after(injector, up_at, timeout=60)
    time.sleep(profile.after)
    injector.stop()
    counts = ledger.settle(rig.stack, mark, injector.deadlines())
    return Result(
        "Redis restart", f"redis-server SHUTDOWN and start again (append-only on) after {profile.warmup:g} s of "
        f"{profile.rate:g} opportunities/s; Redis down {up_at - down_at:.1f} s", 1, counts,
        recovery=f"{seconds(resumed)} from Redis answering to the first order of a new opportunity",
        notes=[f"{len(injector.sent)} opportunities sent, {injector.failed} refused while Redis was down"],
        checks={"resumed within 10 s": resumed is not None and resumed <= 10},
    )  # fmt: skip


def postgres_outage(rig: Rig, profile: Profile) -> Result:
    """Cut every worker's PostgreSQL connections for `pg_outage` seconds, mid-run.

    So that the outage meets requests already past risk (at a few per second almost none would
    be), a batch is approved while the executor's consumer is paused and released as the
    connections drop: they reach the executor with the database gone.
    """
    assert rig.proxy is not None, "the rig must route the workers through the PostgreSQL proxy"
    mark = Mark.now(rig.stack)
    injector = traffic(profile.rate)
    time.sleep(profile.warmup)
    executor = [rig.stack.hostname("execute")]
    broadcast(lambda: app.control.cancel_consumer("execute", destination=executor, reply=True))
    batch = Injector(rate=50, limit=profile.in_flight).start()
    wait_for(lambda: _decided(batch) == profile.in_flight, timeout=30, what="the in-flight batch to be approved")
    cut_at = datetime.now(UTC)
    rig.proxy.cut()
    broadcast(lambda: app.control.add_consumer("execute", destination=executor, reply=True))
    time.sleep(profile.pg_outage)
    rig.proxy.start()
    back_at = time.time()
    resumed = first_order_after(injector, back_at, timeout=90)
    time.sleep(profile.after)
    injector.stop()
    counts = ledger.settle(rig.stack, mark, {**injector.deadlines(), **batch.deadlines()})
    during = [a for a in alerts_since(cut_at, *DB_WORDS) if a.created_at.timestamp() <= back_at + 60]
    texts = [f"{e['title']} {e['message']}".lower() for e in rig.sim.scenario.log("alert")]
    alerted = bool(during or [t for t in texts if any(w in t for w in DB_WORDS)])
    return Result(
        "PostgreSQL outage", f"every worker's PostgreSQL connections cut for {profile.pg_outage:g} s (TCP proxy) "
        f"during {profile.rate:g} opportunities/s, {profile.in_flight} approved requests reaching the executor "
        "as it went", 1, counts,
        recovery=f"{seconds(resumed)} from PostgreSQL reachable to the first order of a new opportunity",
        notes=[
            f"{len(injector.sent) + len(batch.sent)} opportunities sent",
            "operator alerted about the outage: " + ("yes" if alerted else "NO (no alert mentions the database)"),
        ],
        checks={"operator alerted": alerted, "resumed": resumed is not None},
    )  # fmt: skip


def _decided(injector: Injector) -> int:
    ids = [s.request_id for s in injector.sent]
    with session_scope() as session:
        return session.scalar(
            select(func.count()).select_from(RiskDecisionRow).where(RiskDecisionRow.request_id.in_(ids))
        ) or 0


def kill_each_worker(rig: Rig, profile: Profile) -> Result:
    """SIGKILL one worker of each queue, one at a time, under traffic; watchdog, restart, recovery.

    The executor is killed the instant its order reaches the venue (a keyspace notification on
    the paper venue's order log): the moment between the venue call and the recorded outcome.
    """
    mark = Mark.now(rig.stack)
    notes, recoveries, checks = [], [], {}
    injector = traffic(profile.kill_rate)
    for name in profile.kill_workers:
        time.sleep(profile.warmup / 2)
        killed_at = datetime.now(UTC)
        if name == "execute":
            mid_order = kill_on_next_order(rig, timeout=20)
            notes.append(f"execute killed {'just after an order reached the venue' if mid_order else 'between orders'}")
        else:
            rig.stack.kill(name)
        if not profile.wait_for_beat_watchdog:
            app.send_task(WATCHDOG, expires=10)
        patience = 45 if profile.wait_for_beat_watchdog else 15  # beat's watchdog runs every 30 s
        alert = _wait_alert(killed_at, f"Queue {name} has no consumer", patience)
        restart_at = time.time()
        rig.stack.restart(name)
        recovery = _recovery(rig, name, injector, restart_at)
        recoveries.append(recovery)
        notes.append(
            f"{name}: watchdog alert {seconds(alert)} after the kill; back {seconds(recovery)} after restart"
        )
        checks[f"watchdog alerted on {name}"] = alert is not None
        checks[f"{name} recovered"] = recovery is not None
    time.sleep(profile.after)
    injector.stop()
    counts = ledger.settle(rig.stack, mark, injector.deadlines())
    worst = max((r for r in recoveries if r is not None), default=None)
    return Result(
        "SIGKILL a worker of each queue", f"SIGKILL (whole process group) of {', '.join(profile.kill_workers)}, one "
        f"at a time under {profile.kill_rate:g} opportunities/s; each restarted after the watchdog's verdict",
        len(profile.kill_workers), counts, recovery=f"worst {seconds(worst)} from restart to working again",
        notes=[f"{len(injector.sent)} opportunities sent", *notes], checks=checks,
    )  # fmt: skip


def kill_on_next_order(rig: Rig, timeout: float) -> bool:
    """SIGKILL the executor as soon as the paper venue's order log grows (Redis keyspace event);
    True if that happened, False if no order came within `timeout` (then it is killed anyway)."""
    client = rig.redis.client()
    client.config_set("notify-keyspace-events", "Kl")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"__keyspace@{REDIS_DB}__:{PAPER_ORDER_LOG}")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            event = pubsub.get_message(timeout=0.5)
            if event and event["data"] == "rpush":
                rig.stack.kill("execute")
                return True
        rig.stack.kill("execute")
        return False
    finally:
        pubsub.close()


def _wait_alert(since: datetime, title: str, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [a for a in alerts_since(since) if a.title == title]
        if found:
            return (found[0].created_at - since).total_seconds()
        time.sleep(0.5)
    return None


def _recovery(rig: Rig, name: str, injector: Injector, since: float) -> float | None:
    """Seconds until the restarted worker's stage works again: fresh data for the pollers, an
    order of a new opportunity for the trade chain."""
    if name in ("oracle", "markets"):
        kind = "oracle" if name == "oracle" else "books"
        probe: Callable[[], bool] = lambda: (t := last_poll(kind)) is not None and t.timestamp() > since  # noqa: E731
        try:
            wait_for(probe, timeout=60, interval=0.2, what=f"{kind} data after restart")
        except AssertionError:
            return None
        return time.time() - since
    return first_order_after(injector, since, timeout=60)


def load(rig: Rig, profile: Profile) -> Result:
    """`load_rate` opportunities per second for `load_seconds`: backlogs, discards, memory."""
    before = rig.stack.memory()
    mark = Mark.now(rig.stack)
    sampler = BacklogSampler().start()
    senders = [traffic(profile.load_rate / LOAD_SENDERS) for _ in range(LOAD_SENDERS)]  # overlapping round trips
    time.sleep(profile.load_seconds)
    injector = Injector(profile.load_rate)
    for sender in senders:
        sender.stop()
        injector.sent += sender.sent
        injector.failed += sender.failed
        injector.late += sender.late
    stopped = time.monotonic()
    drained = _drain_time(("scan", "risk"), stopped, timeout=120)
    execute_drained = _drain_time(("execute",), stopped, timeout=300)
    counts = ledger.settle(rig.stack, mark, injector.deadlines(), timeout=600)
    sampler.stop()
    after = rig.stack.memory()
    at_execute, before_risk = expired_counts(mark, injector)
    achieved = len(injector.sent) / profile.load_seconds
    peak = sampler.peak
    growth = {n: (after[n].rss - before[n].rss) / 2**20 for n in before if n in after and n not in NOT_WORKERS}
    memory = ", ".join(f"{n} {before[n].rss / 2**20:.0f}→{after[n].rss / 2**20:.0f} MB" for n in before if n in after)
    return Result(
        "Load", f"{profile.load_rate:g} opportunities/s for {profile.load_seconds:g} s on the scan queue "
        f"(achieved {achieved:.0f}/s), one market each", 1, counts,
        recovery=f"scan+risk drained {seconds(drained)}, execute {seconds(execute_drained)} after the load stopped",
        notes=[
            f"{len(injector.sent)} opportunities sent ({injector.late} sends behind schedule)",
            "peak backlog " + ", ".join(f"{q} {peak.get(q, 0)}" for q in TRADE_QUEUES),
            f"expired and discarded: {before_risk} before a risk decision, {at_execute} at the executor "
            f"(recorded as '{EXPIRED_AT_EXECUTE}')",
            f"RSS before→after: {memory}",
        ],
        checks={
            "scan and risk backlogs bounded (drained within 30 s of the load stopping)": (
                drained is not None and drained <= DRAIN_LIMIT
            ),
            "execute backlog bounded by the deadline (drained within 30 s)": (
                execute_drained is not None and execute_drained <= DRAIN_LIMIT
            ),
            "worker memory stable (< 64 MB RSS growth per process)": all(g < 64 for g in growth.values()),
        },
    )  # fmt: skip


@dataclass
class BacklogSampler:
    """The peak length of every queue, sampled twice a second from a thread."""

    peak: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> BacklogSampler:
        threading.Thread(target=self._run, name="chaos-backlog", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                for queue, length in ledger.backlog().items():
                    self.peak[queue] = max(self.peak.get(queue, 0), length)
            except Exception:  # a missed sample is not worth stopping the run for
                continue


def _drain_time(queues: tuple[str, ...], since: float, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(ledger.backlog()[q] == 0 for q in queues):
            return time.monotonic() - since
        time.sleep(0.5)
    return None


def staleness(rig: Rig, profile: Profile) -> Result:
    """Stale books and a stale oracle tick against the scripted market: a jump that would trade on
    fresh data trades nothing on stale data. One symbol per phase (per-market cooldowns)."""
    sim = rig.sim.scenario
    mark = Mark.now(rig.stack)
    checks: dict[str, bool] = {}
    notes: list[str] = []

    fresh = Mark.now(rig.stack)
    sim.jump("BTC", 4.0)
    control = _orders_within(fresh, 20)
    checks["fresh data trades (control)"] = control > 0
    notes.append(f"control: BTC +4% on fresh data -> {control} order(s)")

    sim.set_fault("clob", Fault(mode="status", status=503, times=-1))
    time.sleep(3 * get_settings().book_poll_seconds + 2)  # the stored books are now stale
    books = Mark.now(rig.stack)
    sim.jump("ETH", 4.0)
    stale_books = _orders_within(books, 10)
    sim.clear_faults("clob")
    checks["stale books: no order"] = stale_books == 0
    notes.append(f"book reads failing (HTTP 503): ETH +4% -> {stale_books} order(s), {_stale_logged(books)} stale")

    for provider in ("binance", "coinbase", "coingecko"):
        sim.set_fault(provider, Fault(mode="status", status=503, times=-1))
    time.sleep(3 * get_settings().oracle_poll_seconds + 1)  # the stored tick is now stale
    sim.jump("SOL", -4.0)
    time.sleep(sim.settings["book_lag_seconds"] + 2 * get_settings().book_poll_seconds)  # books reprice
    scanned = Mark.now(rig.stack)
    app.send_task(SCAN, args=[["SOL"]], kwargs={"tick_at": datetime.now(UTC).isoformat()})
    with contextlib.suppress(AssertionError):
        wait_for(lambda: _stale_logged(scanned), timeout=15, interval=0.2, what="the scan to log the stale tick")
    stale_tick = _orders_within(scanned, 8)
    for provider in ("binance", "coinbase", "coingecko"):
        sim.clear_faults(provider)
    checks["stale oracle tick: no order"] = stale_tick == 0
    notes.append(f"oracles failing: SOL -4%, books repriced, scan sent -> {stale_tick} order(s), "
                 f"{_stale_logged(scanned)} stale")  # fmt: skip

    counts = ledger.settle(rig.stack, mark)
    return Result(
        "Staleness", "scripted market: a +4% jump on fresh data (control), then with book reads failing, then with "
        "every oracle failing and a scan sent on the stale tick", 3, counts, notes=notes, checks=checks,
    )  # fmt: skip


def _orders_within(mark: Mark, window: float) -> int:
    """Orders placed in the `window` seconds after `mark` (waits the whole window)."""
    time.sleep(max(0.0, mark.at.timestamp() + window - time.time()))
    return len(ledger.order_log()) - mark.orders


def _stale_logged(mark: Mark) -> int:
    with session_scope() as session:
        return session.scalar(
            select(func.count()).select_from(OpportunityRow).where(
                OpportunityRow.observed_at >= mark.at, OpportunityRow.reason == STALE_REASON
            )
        ) or 0


def malformed(rig: Rig, profile: Profile) -> Result:
    """`malformed` generated bad replies served to every adapter's entry point (counted one by one,
    chaos/payloads.py), then bad replies rotated under the running stack's pollers for a while."""
    per_adapter = max(1, profile.malformed // len(payloads.ADAPTERS))
    with fuzz_environment(rig.redis.url(FUZZ_DB), rig.run_dir) as (served, cases):
        tally = payloads.measure(served, cases, per_adapter)
    mark = Mark.now(rig.stack)
    sim = rig.sim.scenario
    rotated = payloads.strategies(sim, tracked_token_ids())

    def under_the_stack(case: payloads.Case) -> None:
        sim.set_fault(case.adapter, case.fault)
        time.sleep(profile.malformed_stack_seconds / (len(rotated) * profile.malformed_stack_cases))
        sim.clear_faults(case.adapter)

    payloads.drive(rotated, profile.malformed_stack_cases, under_the_stack)
    counts = ledger.settle(rig.stack, mark)
    in_process = tally.count(tally.crashes)
    counts.tracebacks += in_process  # an exception escaping an entry point is a task failure in a worker
    notes = [
        "per adapter (cases / unlogged / logged twice): " + ", ".join(
            f"{a} {tally.cases.get(a, 0)}/{len(tally.unlogged.get(a, []))}/{len(tally.repeated.get(a, []))}"
            for a in payloads.ADAPTERS
        ),
        f"then {profile.malformed_stack_cases * len(rotated)} bad replies rotated under the running stack for "
        f"{profile.malformed_stack_seconds:g} s: {counts.worker_exits} worker exits, {counts.tracebacks - in_process} "
        f"tracebacks, {counts.task_failures} failed tasks",
    ]  # fmt: skip
    for what, found in (("escaped", tally.crashes), ("unlogged", tally.unlogged), ("logged twice", tally.repeated)):
        notes += [f"{what}: {example}" for examples in found.values() for example in examples[:2]]
    return Result(
        "Malformed payloads", f"{tally.total} hypothesis-generated bad replies (statuses, HTML, truncated, not JSON, "
        "wrong shapes, bad values) served by the simulator's fault knobs to binance, coinbase, coingecko, gamma, "
        "clob books and pushover", tally.total, counts, notes=notes,
        checks={
            "no exception escaped": not tally.crashes,
            "every bad reply logged": not tally.unlogged,
            "none logged twice": not tally.repeated,
        },
    )  # fmt: skip


def soak_jumps(seconds: float, every: float = 60.0) -> tuple[tuple[float, str, float], ...]:
    """The scripted market of a soak: one symbol jumps 3% (alternating up and down) every minute."""
    symbols = ("BTC", "ETH", "SOL", "XRP")
    return tuple(
        (at, symbols[i % 4], 3.0 if i % 2 == 0 else -3.0) for i, at in enumerate(range(30, int(seconds), int(every)))
    )


def soak(rig: Rig, profile: Profile) -> Result:
    """The whole stack against the scripted market for `soak_seconds`, without intervention."""
    mark = Mark.now(rig.stack)
    first = rig.stack.memory()
    samples = [first]
    ends = time.monotonic() + profile.soak_seconds
    while time.monotonic() < ends:
        time.sleep(min(60.0, max(0.0, ends - time.monotonic())))
        samples.append(rig.stack.memory())
        rig.stack.check_crashes()
    counts = ledger.settle(rig.stack, mark)
    emitted, decided, expired = _opportunities(mark)
    last = samples[-1]
    # The scanner's parse caches are bounded (the lru_cache sizes in state/market_data.py) and fill
    # during the first minutes; a leak keeps growing after that. Flat is judged on the second half.
    warm = samples[len(samples) // 2]
    peak = {n: max(s[n].rss for s in samples if n in s) for n in first}
    memory = ", ".join(
        f"{n} {first[n].rss / 2**20:.0f}→{warm[n].rss / 2**20:.0f}→{last[n].rss / 2**20:.0f} MB (peak "
        f"{peak[n] / 2**20:.0f})" for n in first if n in last and n in warm
    )
    errors = sum(rig.stack.log(n, mark.offsets.get(n, 0)).count("ERROR/") for n in rig.stack.procs)
    restarts = sum(rig.stack.starts.values()) - len(rig.stack.starts)
    growth = {n: (last[n].rss - warm[n].rss) / 2**20 for n in warm if n in last and n not in NOT_WORKERS}
    return Result(
        "Soak", f"the whole Procfile stack against the simulator's scripted market (a 3% jump every minute) for "
        f"{profile.soak_seconds / 60:g} min, no intervention", 1, counts,
        notes=[
            f"opportunities emitted {emitted}: {decided} decided by risk, {expired} expired in the risk queue "
            "(discarded by Celery, no row)",
            f"ERROR lines in the logs: {errors}; restarts: {restarts}",
            f"RSS start→half-way→end: {memory}",
        ],
        checks={
            "no ERROR lines": errors == 0,
            "no restarts": restarts == 0 and counts.worker_exits == 0,
            "every opportunity decided": emitted == decided,
            "worker memory flat (< 16 MB RSS growth per process over the second half)": all(
                g < 16 for g in growth.values()
            ),
        },
    )  # fmt: skip


def _opportunities(mark: Mark) -> tuple[int, int, int]:
    with session_scope() as session:
        ids = set(
            session.scalars(
                select(OpportunityRow.request_id).where(
                    OpportunityRow.emitted.is_(True), OpportunityRow.observed_at >= mark.at
                )
            )
        )
        decided = session.scalar(
            select(func.count()).select_from(RiskDecisionRow).where(RiskDecisionRow.request_id.in_(ids))
        ) or 0
    return len(ids), decided, len(ids) - decided
