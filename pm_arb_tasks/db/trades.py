"""Writing order outcomes: one row per trade id, upserted, with positions following the fills.

Invariant 5: every outcome is written exactly once per trade id however often it is delivered.
The position changes by the *difference* between the stored and the incoming fill, in the same
transaction, so a redelivered or reconciled outcome never counts a fill twice.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import LiveTradeRow, PaperTradeRow, PositionRow
from pm_arb_tasks.domain.models import ExecutionResult, TradeStatus

ZERO = Decimal(0)
UNSURE = frozenset({TradeStatus.UNKNOWN.value, TradeStatus.PENDING.value})
FILLS = frozenset({TradeStatus.FILLED.value, TradeStatus.PARTIAL.value})


def trade_table(mode: str) -> type[PaperTradeRow] | type[LiveTradeRow]:
    if mode not in ("paper", "live"):
        raise ValueError(f"unknown trading mode {mode!r}")
    return PaperTradeRow if mode == "paper" else LiveTradeRow


def record_outcome(session: Session, result: ExecutionResult) -> PaperTradeRow | LiveTradeRow:
    """Insert or update the trade row for `result`; an `unknown` never overwrites a known outcome,
    and a rejection never overwrites a fill."""
    table = trade_table(result.mode)
    request = result.request
    row = session.scalar(select(table).where(table.trade_id == result.trade_id).with_for_update())
    old_shares, old_cost, old_fee = ZERO, ZERO, ZERO
    if row is None:
        row = table(
            trade_id=result.trade_id,
            request_id=request.request_id,
            opportunity_id=request.opportunity_id,
            market_id=request.market_id,
            token_id=request.token_id,
            side=request.side.value,
            outcome=request.outcome.value,
            requested_amount=request.amount,
            max_price=request.limit_price,
            expected_edge=request.expected_edge,
            expected_fee=request.expected_fee,
            strategy=request.strategy,
            created_at=result.executed_at,
            status=result.status.value,
        )
        session.add(row)
    else:
        if result.status.value in UNSURE and row.status not in UNSURE:
            return row
        if result.status is TradeStatus.REJECTED and row.status in FILLS:
            return row  # "never placed" cannot be true of an order that filled
        old_shares, old_cost, old_fee = row.filled_amount, _cost(row), row.fee
    row.status = result.status.value
    row.filled_amount = result.filled_amount
    row.fill_price = result.fill_price
    row.fee = result.fee
    row.order_id = result.order_id or row.order_id
    row.order_hash = result.order_hash or row.order_hash
    row.venue_trade_ids = list(result.venue_trade_ids) or row.venue_trade_ids
    row.error_message = result.error_message
    row.filled_at = result.filled_at or row.filled_at
    _move_position(session, result, result.filled_amount - old_shares, result.cost - old_cost, result.fee - old_fee)
    return row


def _cost(row: PaperTradeRow | LiveTradeRow) -> Decimal:
    return row.filled_amount * row.fill_price if row.fill_price is not None else ZERO


def _move_position(
    session: Session, result: ExecutionResult, shares: Decimal, cost: Decimal, fee: Decimal
) -> None:
    if not shares and not cost and not fee:
        return
    request = result.request
    key = {"mode": result.mode, "market_id": request.market_id, "outcome": request.outcome.value}
    position = session.scalar(select(PositionRow).filter_by(**key).with_for_update())
    if position is None:
        position = PositionRow(**key, token_id=request.token_id, quantity=ZERO, cost=ZERO, fees=ZERO)
        session.add(position)
    position.quantity += shares
    position.cost += cost
    position.fees += fee
