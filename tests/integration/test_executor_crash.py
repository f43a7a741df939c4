"""Invariants 1 and 5 in live mode through real workers: kill -9 the executor at three points, and
deliver the same execute message twice; one venue order per request (none when the kill came
before the venue had it) and one matching `live_trades` row, every time.

The executor is a real `celery worker -Q execute -c 1 --prefetch-multiplier 1` (the Procfile's
line) with the real py-clob-client-v2, posting to the in-process simulator; a persist worker
writes the rows. Each kill lands at its point by construction, never by timing:

- before the post: the simulator holds the POST without looking at it (`hold_drop`), so the
  signed order's hash is in the claim and the venue has nothing; the executor is killed while
  held, then the simulator drops the request;
- after the post, before the database write: the simulator places the order and holds its reply
  (`hold_reply`); the executor is killed while it waits for that reply;
- after the write: the claim row shows the recorded outcome, then the executor is killed
  (whether it had acknowledged the message yet or not, one order and one row must follow).

Before and after-post kills are checked to have landed before the outcome was recorded. Most
trials kill the pool child (reject-on-worker-lost requeues the message at once); the first of
each point kills the whole worker, whose message comes back only after the short broker
visibility timeout, past its deadline, through the expired-redelivery path in persist.
PMARB_CRASH_TRIALS sets the trials per point (default 20, as the issue asks).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pm_arb_tasks.adapters.polymarket.live import LiveVenue
from pm_arb_tasks.db.models import LiveTradeRow, OrderClaimRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import Market, TradeRequest
from pm_arb_tasks.services import reconcile
from pm_arb_tasks.services.execution import SIGNED_NOT_ANSWERED
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.sim.server import SimServer, running_sim
from pm_arb_tasks.tasks.pipeline import alert_outcome, execute_order, persist_outcome
from tests.support.trading import approved
from tests.support.venue import CRASH_REDIS_DB, best_ask, buy_yes, cache_market, live_stores, new_key, strike_market
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
KEY = new_key()
TRIALS = int(os.environ.get("PMARB_CRASH_TRIALS", "20"))
VISIBILITY = 25  # the shortest BROKER_VISIBILITY_TIMEOUT_SECONDS the task limits allow (celery_app)
CHILD_TTL = 30.0  # a requeued message comes back at once: still before its deadline
WORKER_TTL = 10.0  # a whole-worker kill's message comes back after VISIBILITY: expired by then

BEFORE_POST, AFTER_POST, AFTER_WRITE = "before the post", "after the post, before the write", "after the write"
HOLD = {BEFORE_POST: "hold_drop", AFTER_POST: "hold_reply"}
ORDERS = {BEFORE_POST: 0, AFTER_POST: 1, AFTER_WRITE: 1}
SETTLED = {BEFORE_POST: "failed", AFTER_POST: "filled", AFTER_WRITE: "filled"}


@dataclass
class Live:
    sim: SimServer
    market: Market
    executor: Worker
    persister: Worker
    venue: LiveVenue

    def seq(self) -> int:
        """The simulator log's last sequence number: what a trial's entries come after."""
        entries = self.sim.scenario.log()
        return entries[-1]["seq"] if entries else 0

    def log(self, kind: str, since: int) -> list[dict[str, Any]]:
        return self.sim.scenario.log(kind, since)


@dataclass(frozen=True)
class Trial:
    request: TradeRequest
    point: str
    since: int  # simulator log position before the trial


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    with running_sim(seed=7, symbols=("BTC",)) as sim:
        sim.scenario.settings["levels"] = 10  # depth for some 60 orders on one market
        env_extra = {"BROKER_VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY)}
        with live_stores(sim.url, KEY, redis_db=CRASH_REDIS_DB, **env_extra) as env:
            market = cache_market(sim.scenario, strike_market(sim.scenario))
            executor, persister = Worker("execute", "execute", env), Worker("persist", "persist,alert", env)
            with running(executor, persister):
                yield Live(sim, market, executor, persister, LiveVenue.from_settings(get_settings()))


# ---- helpers -------------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def marketable(live: Live, ttl: float) -> TradeRequest:
    return buy_yes(live.market, "5", best_ask(live.sim.scenario, live.market.yes_token_id) + Decimal("0.02"), ttl=ttl)


def send(request: TradeRequest, task_id: str | None = None) -> None:
    """The execute step as the trade chain sends it: expiring at the deadline, persist and alert linked."""
    execute_order.apply_async(
        args=[approved(request).model_dump(mode="json")], task_id=task_id or uuid.uuid4().hex,
        expires=request.deadline, link=persist_outcome.s() | alert_outcome.s(),
    )


def claim_of(request: TradeRequest) -> OrderClaimRow | None:
    with session_scope() as session:
        return session.get(OrderClaimRow, request.request_id)


def rows_of(request: TradeRequest) -> list[LiveTradeRow]:
    with session_scope() as session:
        return list(session.scalars(select(LiveTradeRow).where(LiveTradeRow.request_id == request.request_id)))


def pool_children(worker: Worker) -> list[int]:
    """The prefork pool's processes (one at concurrency 1), as the kernel lists the worker's children."""
    assert worker.proc is not None
    pid = worker.proc.pid
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def reaped_or_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def kill_pool_child(worker: Worker) -> None:
    """SIGKILL the pool child, with its parent paused until the child is a zombie. Billiard looks at
    a child's exit status as soon as the child's pipes close, which can be a moment before the
    kernel makes it reapable; when that look comes too early, the loss is only noticed by Celery's
    5 s pool timer. The pause changes nothing the executor does: it only saves those seconds."""
    assert worker.proc is not None
    children = pool_children(worker)
    assert children, "no pool child to kill"
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        for child in children:
            os.kill(child, signal.SIGKILL)
        wait_for(lambda: all(map(reaped_or_zombie, children)), timeout=10, interval=0.005, what="the child to die")
    finally:
        os.kill(worker.proc.pid, signal.SIGCONT)


def release_holds(live: Live) -> None:
    httpx.post(f"{live.sim.url}/sim/release", timeout=5).raise_for_status()


def run_trial(live: Live, point: str, whole_worker: bool) -> Trial:
    """One request, one kill -9 at `point`; returns once the executor is consuming again."""
    request = marketable(live, WORKER_TTL if whole_worker else CHILD_TTL)
    trial = Trial(request, point, live.seq())
    live.sim.scenario.settings["clob_post_faults"] = [HOLD[point]] if point in HOLD else []
    send(request)
    if point in HOLD:
        wait_for(lambda: live.log("clob_hold", trial.since), timeout=30, what=f"the post to be held ({point})")
    else:
        wait_for(lambda: (c := claim_of(request)) is not None and c.status == "filled", timeout=30,
                 what="the executor to record the fill with its claim")
    if whole_worker:
        live.executor.kill()
    else:
        kill_pool_child(live.executor)
    if point in HOLD:
        claim = claim_of(request)
        assert claim is not None and claim.order_hash and claim.result is not None
        assert claim.result["error_message"] == SIGNED_NOT_ANSWERED, "the kill came after the outcome was written"
        release_holds(live)
    if whole_worker:
        live.executor.start().wait_ready()
    return trial


def check_venue(live: Live, trial: Trial) -> None:
    """What reached the venue during the trial: the one post, and the order only if it was accepted."""
    claim = claim_of(trial.request)
    assert claim is not None and claim.order_hash
    assert len(live.log("clob_post", trial.since)) == 1, "a redelivery posted again"
    placed = [o["order_id"] for o in live.log("clob_order", trial.since)]
    assert placed == [claim.order_hash] * ORDERS[trial.point]


def row_written(trial: Trial) -> bool:
    return len(rows_of(trial.request)) > 0


# ---- the tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("point", [BEFORE_POST, AFTER_POST, AFTER_WRITE])
def test_kill_minus_nine_leaves_one_order_and_one_row(live: Live, point: str) -> None:
    first = run_trial(live, point, whole_worker=True)  # its message returns after VISIBILITY, meanwhile:
    check_venue(live, first)
    trials = [first]
    for _ in range(TRIALS - 1):
        trial = run_trial(live, point, whole_worker=False)
        wait_for(lambda t=trial: row_written(t), timeout=30, what="the redelivered request's row")
        check_venue(live, trial)
        trials.append(trial)
    wait_for(lambda: row_written(first), timeout=VISIBILITY + 30, what="the row after the visibility timeout")

    # Settle what the venue never had (unknown -> failed once the grace period is over) and check
    # that the pipeline itself wrote every row (the reconciliation sweep found nothing to record).
    report = reconcile.run(live.venue, now() + reconcile.NOT_FOUND_GRACE + timedelta(seconds=1))
    assert (report.recorded, report.errors) == (0, 0)
    placed = Counter(o["order_id"] for o in live.log("clob_order", first.since))
    for trial in trials:
        claim = claim_of(trial.request)
        assert claim is not None
        [row] = rows_of(trial.request)
        assert (row.status, row.order_hash) == (SETTLED[point], claim.order_hash)
        assert placed[claim.order_hash] == ORDERS[point]
    assert sum(placed.values()) == ORDERS[point] * len(trials)  # no order under any other hash either


def test_the_same_message_twice_places_one_order(live: Live) -> None:
    request = marketable(live, CHILD_TTL)
    since, log_from, persisted_from = live.seq(), len(live.executor.log()), len(live.persister.log())
    same_id = uuid.uuid4().hex
    for task_id in (same_id, same_id, uuid.uuid4().hex):
        send(request, task_id)

    wait_for(lambda: live.executor.log()[log_from:].count("delivered again") == 2, timeout=60,
             what="both redeliveries")

    def alerts_finished() -> int:
        lines = live.persister.log()[persisted_from:].splitlines()
        return sum("pm_arb.alert.trade[" in line and "succeeded" in line for line in lines)

    wait_for(lambda: alerts_finished() == 3, timeout=60, what="all three alert tasks to finish")
    claim = claim_of(request)
    assert claim is not None and claim.order_hash
    assert len(live.log("clob_post", since)) == 1
    assert [o["order_id"] for o in live.log("clob_order", since)] == [claim.order_hash]
    assert [(r.status, r.order_id) for r in rows_of(request)] == [("filled", claim.order_hash)]
