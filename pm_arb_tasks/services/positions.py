"""Positions after the fills: settlement at resolution, marks to the book, and a check against the venue.

The positions table is built by `db.trades.record_outcome` from fills. Here a resolved market
(the markets table says `closed` with a `winning_outcome`) settles its open positions: a winning
share pays $1, a losing one nothing, and realized P&L = payout - cost - fees, recorded once.
Open positions are marked to the stored book's best bid (what selling now would fetch), and the
equity they add up to is recorded on a schedule: the risk guardian measures drawdown from the
highest recorded equity and the day's loss from the first one of the day (risk/book.py). In live
mode our positions are compared with the venue's conditional-token balances.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import EquitySnapshotRow, MarketRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.db.trades import UNSURE, trade_table
from pm_arb_tasks.domain.models import ZERO
from pm_arb_tasks.risk import guardian
from pm_arb_tasks.services.alerts import alert_if_large_loss, raise_alert
from pm_arb_tasks.state.market_data import get_book

log = logging.getLogger(__name__)
OPEN, SETTLED = "open", "settled"
SIZE_TOLERANCE_USD = Decimal(1)
PRICE_TOLERANCE = Decimal("0.05")


def _has_open_orders(session: Session, mode: str, market_id: str) -> bool:
    """Orders whose outcome is still open would move the position after it settled: wait for them."""
    table = trade_table(mode)
    query = select(table.id).where(table.market_id == market_id, table.status.in_(UNSURE)).limit(1)
    return session.scalar(query) is not None


def settle_resolved(now: datetime) -> int:
    """Settle every open position whose market has resolved; returns how many settled."""
    with session_scope() as session:
        due = session.execute(
            select(PositionRow.id, PositionRow.mode)
            .join(MarketRow, MarketRow.market_id == PositionRow.market_id)
            .where(PositionRow.status == OPEN, MarketRow.closed.is_(True), MarketRow.winning_outcome.is_not(None))
        ).all()
    settled = 0
    for position_id, mode in due:
        try:
            settled += _settle_one(position_id, mode, now)
        except Exception:  # one bad row must not keep the others from settling
            log.exception("could not settle position %s", position_id)
    return settled


def _settle_one(position_id: int, mode: str, now: datetime) -> bool:
    """The position's P&L and its market's risk release, committed together."""
    with session_scope() as session:
        guardian.hold_book(session, mode, now)
        position = session.scalar(select(PositionRow).where(PositionRow.id == position_id).with_for_update())
        market = session.get(MarketRow, position.market_id) if position else None
        if position is None or market is None or position.status != OPEN or not market.winning_outcome:
            return False
        if _has_open_orders(session, mode, position.market_id):
            log.info("market %s resolved, waiting for its open orders to reconcile", position.market_id)
            return False
        payout = position.quantity if position.outcome == market.winning_outcome else ZERO
        position.realized_pnl = payout - position.cost - position.fees
        position.status, position.settled_at = SETTLED, now
        guardian.release_market(session, mode, position.market_id, now)
        pnl, key = position.realized_pnl, f"{position.market_id[:16]} {position.outcome}"
    raise_alert(
        kind="position_settled", priority=0, title="Position settled",
        message=f"{key}: {'won' if payout else 'lost'}, realized P&L {pnl:+.2f} ({mode})",
        alert_id=f"settled-{position_id}",
    )
    alert_if_large_loss(ref=f"position-{position_id}", what=f"{key} ({mode})", pnl=pnl)
    return True


@dataclass(frozen=True)
class PositionMark:
    mode: str
    market_id: str
    outcome: str
    token_id: str
    quantity: Decimal
    cost: Decimal
    fees: Decimal
    mark: Decimal | None  # best bid in the stored book; None when there is no book

    @property
    def avg_price(self) -> Decimal | None:
        return self.cost / self.quantity if self.quantity else None

    @property
    def unrealized(self) -> Decimal | None:
        return None if self.mark is None else self.quantity * self.mark - self.cost - self.fees


@dataclass(frozen=True)
class Pnl:
    realized: Decimal
    unrealized: Decimal
    unmarked: int  # open positions without a book to mark them to


def marks(mode: str) -> list[PositionMark]:
    with session_scope() as session:
        rows = session.scalars(select(PositionRow).where(PositionRow.mode == mode, PositionRow.status == OPEN)).all()
    result = []
    for row in rows:
        book = get_book(row.token_id)
        bid = book.best_bid.price if book and book.best_bid else None
        result.append(
            PositionMark(mode, row.market_id, row.outcome, row.token_id, row.quantity, row.cost, row.fees, bid)
        )
    return result


def pnl(mode: str) -> Pnl:
    with session_scope() as session:
        realized = sum(
            session.scalars(select(PositionRow.realized_pnl).where(PositionRow.mode == mode)).all(), ZERO
        )
    open_marks = marks(mode)
    unrealized = sum((m.unrealized for m in open_marks if m.unrealized is not None), ZERO)
    return Pnl(realized, unrealized, sum(1 for m in open_marks if m.unrealized is None))


def snapshot_equity(mode: str, bankroll: Decimal, now: datetime) -> Decimal:
    """Record equity = bankroll + realized + unrealized P&L as of `now`; returns it.

    Without these rows the guardian would only ever see realized P&L: a peak made of open gains,
    or a day's loss still open, would be invisible to the drawdown and daily-loss limits.
    Unmarked positions (no book) count at cost, neither gain nor loss."""
    figures = pnl(mode)
    equity = bankroll + figures.realized + figures.unrealized
    with session_scope() as session:
        session.add(
            EquitySnapshotRow(
                mode=mode, equity=equity, realized_pnl=figures.realized, unrealized_pnl=figures.unrealized, taken_at=now
            )
        )
    return equity


class VenuePositions(Protocol):
    def venue_position(self, token_id: str, since: datetime) -> tuple[Decimal, Decimal | None]: ...


def check_against_venue(venue: VenuePositions, now: datetime) -> list[str]:
    """Compare open live positions with the venue; each difference is logged and alerted (hourly)."""
    with session_scope() as session:
        live = session.scalars(select(PositionRow).where(PositionRow.mode == "live", PositionRow.status == OPEN))
        rows = [row for row in live if not _has_open_orders(session, "live", row.market_id)]
    problems = []
    for row in rows:
        try:
            shares, venue_avg = venue.venue_position(row.token_id, row.opened_at - timedelta(hours=1))
        except Exception as exc:  # the venue not answering is not a mismatch; try again next run
            log.warning("position check %s: venue did not answer: %s", row.market_id[:16], type(exc).__name__)
            continue
        problem = position_difference(row.quantity, row.cost, shares, venue_avg)
        if problem:
            text = f"{row.market_id[:16]} {row.outcome}: {problem}"
            problems.append(text)
            log.warning("position mismatch %s", text)
            raise_alert(
                kind="position_mismatch", priority=1, title="Position differs from the venue", message=text,
                alert_id=f"position-{row.id}-{now:%Y%m%d%H}",
            )
    return problems


def position_difference(
    quantity: Decimal, cost: Decimal, venue_shares: Decimal, venue_avg: Decimal | None
) -> str:
    """"" when ours and the venue's agree: size within $1 (at our average price), price within 0.05."""
    ours_avg = cost / quantity if quantity else None
    price = ours_avg or venue_avg or Decimal(1)
    gap = abs(quantity - venue_shares) * price
    if gap > SIZE_TOLERANCE_USD:
        return f"we hold {quantity:.2f} shares, the venue {venue_shares:.2f} (${gap:.2f} apart)"
    if ours_avg is not None and venue_avg is not None and abs(ours_avg - venue_avg) > PRICE_TOLERANCE:
        return f"average price ours {ours_avg:.4f}, venue {venue_avg:.4f}"
    return ""
