"""Counting what a scenario did, from the venue's side and the database's side, never from logs alone.

- orders placed: entries of the paper venue's order log (`pm_arb:paper:orders`, JSON
  {"order_id", "at"}) appended during the scenario;
- duplicates: order ids that occur more than once in the whole log (any occurrence in the window);
- stale orders: orders that reached the venue after their request's deadline (the deadline read
  from the request the executor stored with its claim, or from the injector's own record);
- rows lost: requests approved by risk during the window without a `paper_trades` row once the
  pipeline has settled; unrecorded fills: placed orders whose row does not say filled or partial;
- crashes: worker processes that ended without being told to, plus tracebacks and failed tasks
  ("raised unexpected") in their output during the window.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select

from pm_arb_tasks.celery_app import QUEUES
from pm_arb_tasks.db.models import OrderClaimRow, PaperTradeRow, RiskDecisionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.services.paper_venue import PAPER_ORDER_LOG, PAPER_ORDER_LOG_SIZE
from pm_arb_tasks.state.redis_client import get_redis
from tests.support.stack import Stack

FILLED = frozenset({"filled", "partial"})
TASK_FAILED = "raised unexpected"
UNACKED = "unacked"  # kombu's Redis transport: messages delivered and not yet acknowledged
# Tracebacks Celery logs itself while a worker's consumer reconnects after the broker went away;
# the worker keeps running and resumes consuming. Counted apart, never as crashes.
BROKER_RECONNECT = {
    "consumer: Connection to broker lost": "the consumer restarts its connection",
    "Error on restarting Gossip": "celery's gossip step restarting without a connection (harmless)",
    # An early-acked task received just as the broker went away: the ack fails, the message stays
    # in the broker's unacked set and comes back after the visibility timeout, where the request's
    # deadline (`expires`) and the executor's claim make the second delivery harmless (invariant 1).
    "Couldn't ack": "kombu could not acknowledge a message while the broker was down; it is redelivered",
}


@dataclass(frozen=True)
class Order:
    order_id: str
    at: datetime

    @property
    def request_id(self) -> str:
        return self.order_id.removeprefix("paper-")


def order_log() -> list[Order]:
    entries = get_redis().lrange(PAPER_ORDER_LOG, 0, -1)
    if len(entries) >= PAPER_ORDER_LOG_SIZE:
        raise RuntimeError(f"the paper order log is full ({PAPER_ORDER_LOG_SIZE}): older orders were trimmed")
    return [Order(e["order_id"], datetime.fromisoformat(e["at"])) for e in map(json.loads, entries)]


def backlog() -> dict[str, int]:
    """Messages waiting per queue, plus delivered-but-unacknowledged ones."""
    pipe = get_redis().pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(queue)
    pipe.hlen(UNACKED)
    lengths = pipe.execute()
    return {**dict(zip(QUEUES, lengths[:-1], strict=True)), UNACKED: lengths[-1]}


@dataclass
class Mark:
    """Where a scenario started: the order log's length, the clock, each process's log offset."""

    orders: int
    at: datetime
    offsets: dict[str, int]
    exits: int

    @classmethod
    def now(cls, stack: Stack) -> Mark:
        return cls(len(order_log()), datetime.now(UTC), stack.offsets(), len(stack.check_crashes()))


@dataclass
class Counts:
    orders: int = 0
    duplicates: int = 0
    stale_orders: int = 0
    approved: int = 0
    rows_lost: int = 0
    unrecorded_fills: int = 0
    pending: int = 0  # trade-chain messages still queued or unacknowledged when counted (0: settled)
    worker_exits: int = 0
    tracebacks: int = 0
    task_failures: int = 0
    reconnect_tracebacks: int = 0  # Celery's own, logged while it reconnects to the broker (see BROKER_RECONNECT)
    lost_ids: list[str] = field(default_factory=list)
    traceback_by_process: dict[str, int] = field(default_factory=dict)
    traceback_samples: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # what the stores say about each lost or unrecorded request

    @property
    def crashes(self) -> int:
        return self.worker_exits + self.tracebacks


def _deadlines(request_ids: set[str], known: dict[str, datetime]) -> dict[str, datetime]:
    found = {rid: known[rid] for rid in request_ids if rid in known}
    missing = request_ids - set(found)
    if missing:
        with session_scope() as session:
            rows = session.execute(
                select(OrderClaimRow.request_id, OrderClaimRow.result).where(OrderClaimRow.request_id.in_(missing))
            )
            for request_id, result in rows:
                if result:
                    found[request_id] = datetime.fromisoformat(result["request"]["deadline"])
    return found


def diagnose(request_ids: list[str], placed: set[str]) -> list[str]:
    """One line per request: its decision, its claim, its trade row, and whether the venue has it."""
    lines = []
    with session_scope() as session:
        for rid in request_ids[:20]:
            decision = session.scalar(select(RiskDecisionRow).where(RiskDecisionRow.request_id == rid))
            claim = session.get(OrderClaimRow, rid)
            row = session.scalar(select(PaperTradeRow).where(PaperTradeRow.request_id == rid))
            lines.append(
                f"{rid}: decision {decision.reason if decision else None!r} at "
                f"{decision.decided_at.isoformat() if decision else '-'}; claim "
                f"{(claim.status, claim.claimed_at.isoformat()) if claim else None}; row "
                f"{(row.status, row.error_message) if row else None}; order at the venue: {rid in placed}"
            )
    return lines


def count(stack: Stack, mark: Mark, known_deadlines: dict[str, datetime] | None = None) -> Counts:
    """What happened since `mark` (see the module docstring)."""
    log = order_log()
    window = log[mark.orders :]
    seen = Counter(o.order_id for o in log)
    counts = Counts(orders=len(window))
    counts.duplicates = sum(seen[o] - 1 for o in {o.order_id for o in window} if seen[o] > 1)
    deadlines = _deadlines({o.request_id for o in window}, known_deadlines or {})
    counts.stale_orders = sum(1 for o in window if o.request_id in deadlines and o.at > deadlines[o.request_id])
    with session_scope() as session:
        approved = set(
            session.scalars(
                select(RiskDecisionRow.request_id).where(
                    RiskDecisionRow.approved.is_(True), RiskDecisionRow.decided_at >= mark.at
                )
            )
        )
        placed = {o.request_id for o in window}
        rows = dict(
            session.execute(
                select(PaperTradeRow.request_id, PaperTradeRow.status).where(
                    PaperTradeRow.request_id.in_(approved | placed)
                )
            ).all()
        )
    counts.approved = len(approved)
    counts.lost_ids = sorted((approved | placed) - set(rows))
    counts.rows_lost = len(counts.lost_ids)
    unrecorded = sorted(rid for rid in placed if rows.get(rid) not in FILLED)
    counts.unrecorded_fills = len(unrecorded)
    counts.details = diagnose(sorted(set(counts.lost_ids) | set(unrecorded)), placed)
    counts.worker_exits = len(stack.check_crashes()) - mark.exits
    for name, headers in stack.traceback_records(mark.offsets).items():
        for header in headers:
            known = next((why for pattern, why in BROKER_RECONNECT.items() if pattern in header), None)
            if known:
                counts.reconnect_tracebacks += 1
            else:
                counts.tracebacks += 1
                counts.traceback_by_process[name] = counts.traceback_by_process.get(name, 0) + 1
                counts.traceback_samples.append(f"{name}: {header[:200]}")
    counts.task_failures = sum(stack.log(n, mark.offsets.get(n, 0)).count(TASK_FAILED) for n in stack.procs)
    return counts


def settle(
    stack: Stack, mark: Mark, known_deadlines: dict[str, datetime] | None = None, timeout: float = 150,
    stuck_after: float = 40, idle_after: float = 5,
) -> Counts:
    """Count once the trade chain has drained: no lost row left and nothing waiting; or nothing
    waiting and nothing changing for `idle_after` seconds; or messages waiting but nothing changing
    for `stuck_after` seconds (longer than the broker's 30 s visibility timeout, after which a
    killed worker's unacknowledged message comes back, and than persist's longest backoff)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, ...] | None = None
    moved = time.monotonic()
    while True:
        counts = count(stack, mark, known_deadlines)
        queues = backlog()
        counts.pending = sum(queues[q] for q in ("risk", "execute", "persist", "alert")) + queues[UNACKED]
        if counts.rows_lost == 0 and counts.pending == 0:
            return counts
        state = (counts.orders, counts.rows_lost, counts.unrecorded_fills, counts.pending)
        if state != last:
            last, moved = state, time.monotonic()
        still = time.monotonic() - moved
        if still > (idle_after if counts.pending == 0 else stuck_after) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)
