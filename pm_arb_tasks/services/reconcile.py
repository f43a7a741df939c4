"""Order reconciliation (live mode, every 10 s): what the executor could not know, the venue tells.

A live order leaves the executor `filled`/`partial` (its trades still settling on chain),
`pending` (resting), or `unknown` (timeout, 5xx, delayed, an interrupted delivery). This asks
the venue about each such order (order record, then trades) and writes what it says through
`db.trades.record_outcome`, the same upsert the pipeline uses, so positions move by the fill
difference and a fill is never counted twice. It never posts: an order that is not at the venue
is recorded as failed once a grace period has passed, and an order resting past its request's
deadline is cancelled (no stale orders). Final outcomes release the risk reservation.

Before that, claims whose stored outcome never became a row are recorded (`record_unrecorded`):
the executor stores an `unknown` outcome with the signed order's hash before every post, so an
order whose every delivery died, or whose persist message was lost, still ends as a row here,
and then as whatever the venue says about its hash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select

from pm_arb_tasks.adapters.polymarket.order_mapping import Settlement
from pm_arb_tasks.db import claims
from pm_arb_tasks.db.models import LiveTradeRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.db.trades import record_outcome
from pm_arb_tasks.domain.models import (
    ExecutionResult,
    Outcome,
    RiskDecision,
    Side,
    TradeRequest,
    TradeStatus,
)
from pm_arb_tasks.risk import guardian
from pm_arb_tasks.security import redact
from pm_arb_tasks.services import outcomes
from pm_arb_tasks.services.alerts import alert_for_outcome
from pm_arb_tasks.services.execution import result_for
from pm_arb_tasks.settings import get_settings

if TYPE_CHECKING:  # py-clob-client-v2 is loaded only by processes that trade live
    from pm_arb_tasks.adapters.polymarket.live import LiveVenue

log = logging.getLogger(__name__)
BATCH = 50  # rows per run, least recently checked first, so a backlog is worked through in turns
NOT_FOUND_GRACE = timedelta(seconds=30)  # an order the venue never lists after this was never placed
# A claim this old without a row has no delivery left that will write it: past the execute task's
# hard time limit (a redelivery's late row still upserts over an `unknown` one).
UNRECORDED_AFTER = timedelta(seconds=15)
OPEN = (TradeStatus.PENDING.value, TradeStatus.UNKNOWN.value)
KNOWN_FILLS = (TradeStatus.FILLED.value, TradeStatus.PARTIAL.value)
RESTING = ("LIVE", "DELAYED")  # venue order states that could still fill: cancelled once past the deadline


@dataclass
class ReconcileReport:
    checked: int = 0
    changed: int = 0
    errors: int = 0
    recorded: int = 0  # claims whose outcome had never become a row


def due_rows(limit: int = BATCH) -> list[LiveTradeRow]:
    """Open orders, and fills whose settlement is not final yet."""
    with session_scope() as session:
        query = (
            select(LiveTradeRow)
            .where(
                or_(
                    LiveTradeRow.status.in_(OPEN),
                    and_(
                        LiveTradeRow.status.in_(KNOWN_FILLS),
                        or_(LiveTradeRow.settlement.is_(None), LiveTradeRow.settlement == Settlement.PENDING),
                    ),
                )
            )
            .order_by(LiveTradeRow.updated_at)
            .limit(limit)
        )
        return list(session.scalars(query))


def request_of(row: LiveTradeRow) -> TradeRequest:
    """The request as far as the row records it: enough to look the order up and upsert the row."""
    ttl = timedelta(seconds=get_settings().trade_ttl_seconds)
    return TradeRequest(
        request_id=row.request_id, opportunity_id=row.opportunity_id, market_id=row.market_id,
        token_id=row.token_id, outcome=Outcome(row.outcome), side=Side(row.side), amount=row.requested_amount,
        limit_price=row.max_price, expected_edge=row.expected_edge, expected_fee=row.expected_fee,
        tick_at=row.created_at, deadline=row.created_at + ttl, strategy=row.strategy,
    )


def record_unrecorded(now: datetime, report: ReconcileReport) -> None:
    """Write the row of every live claim whose outcome (or pre-post `unknown`) has none, as the
    persist stage would have; an open one is then checked with the other due rows."""
    for result in claims.unrecorded("live", now - UNRECORDED_AFTER, BATCH):
        log.warning("request %s: claimed, no trade row; recording %s", result.request.request_id, result.status.value)
        try:
            outcomes.record(result)
            report.recorded += 1
            alert_for_outcome(result)
        except Exception as exc:
            report.errors += 1
            log.warning("recording %s: %s", result.trade_id, redact(f"{type(exc).__name__}: {exc}"))


def run(venue: LiveVenue, now: datetime) -> ReconcileReport:
    report = ReconcileReport()
    record_unrecorded(now, report)
    for row in due_rows():
        report.checked += 1
        try:
            if reconcile_row(venue, row, now):
                report.changed += 1
        except Exception as exc:  # one order the venue cannot answer for must not stop the others
            report.errors += 1
            log.warning("reconcile %s: %s", row.trade_id, redact(f"{type(exc).__name__}: {exc}"))
    if report.checked:
        log.info(
            "reconciled %d order(s): %d changed, %d recorded, %d errors",
            report.checked, report.changed, report.recorded, report.errors,
        )
    return report


def reconcile_row(venue: LiveVenue, row: LiveTradeRow, now: datetime) -> bool:
    """Ask the venue about one row and record the answer; True when the outcome changed."""
    request = request_of(row)
    order_hash = row.order_hash or row.order_id
    settlement = row.settlement
    if not order_hash:
        result = result_for(request, "live", TradeStatus.FAILED, "no signed order on record: nothing was posted", now)
    else:
        trade_ids = tuple(row.venue_trade_ids or ())
        exam = venue.examine(request, order_hash, trade_ids, now)
        if exam.venue_state in RESTING and now >= request.deadline:
            log.warning("order %s rests past its deadline: cancelling it", order_hash)
            venue.cancel(order_hash)
            exam = venue.examine(request, order_hash, (), now)
        result, settlement = exam.result, exam.settlement or settlement
        result = _settle_absence(row, result, exam.settlement, now)
        if result is None:
            _touch(row.trade_id, settlement, now)
            return False
    changed = _store(result, settlement, now)
    if changed and result.status.value != row.status:
        _after_change(row, result)
    return changed


def _settle_absence(
    row: LiveTradeRow, result: ExecutionResult, settlement: str | None, now: datetime
) -> ExecutionResult | None:
    """Decide what "no fill found" means for this row; None: keep the row as it is."""
    if result.filled_amount > 0:
        return result
    if row.status in KNOWN_FILLS:
        # The post reported a match: only trades that failed on chain undo it, not trades not visible yet.
        return result if settlement == Settlement.FAILED else None
    if result.status is TradeStatus.UNKNOWN and not row.venue_trade_ids and now - row.created_at >= NOT_FOUND_GRACE:
        message = "not at the venue after the grace period: never placed"
        return result.model_copy(update={"status": TradeStatus.FAILED, "error_message": message})
    return result


def _store(result: ExecutionResult, settlement: str | None, now: datetime) -> bool:
    with session_scope() as session:
        # Locked from the first read, so record_outcome's fill delta is taken against current values.
        row = session.scalar(select(LiveTradeRow).where(LiveTradeRow.trade_id == result.trade_id).with_for_update())
        before = (row.status, row.filled_amount, row.fill_price, row.fee, row.settlement) if row else None
        stored = record_outcome(session, result)
        stored.settlement = settlement
        stored.updated_at = now
        return before != (stored.status, stored.filled_amount, stored.fill_price, stored.fee, stored.settlement)


def _touch(trade_id: str, settlement: str | None, now: datetime) -> None:
    with session_scope() as session:
        row = session.scalar(select(LiveTradeRow).where(LiveTradeRow.trade_id == trade_id).with_for_update())
        if row is not None:
            row.settlement = settlement
            row.updated_at = now


def _after_change(row: LiveTradeRow, result: ExecutionResult) -> None:
    """A newly final outcome releases the risk reservation and tells the operator (once each)."""
    log.info("order %s: %s -> %s", row.trade_id, row.status, result.status.value)
    decision = RiskDecision(
        request=result.request, approved=True, approved_amount=result.request.amount, decided_at=result.executed_at
    )
    for step in (lambda: guardian.settle(decision, result), lambda: alert_for_outcome(result)):
        try:
            step()
        except Exception:
            log.exception("after reconciling %s", row.trade_id)
