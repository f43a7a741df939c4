"""Equity snapshots written by the product (not by the test) feed the drawdown and daily-loss rules:
open gains make the peak, open losses count against it, on real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import delete

from pm_arb_tasks.db.models import AlertRow, EquitySnapshotRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import Book, BookLevel
from pm_arb_tasks.risk import guardian
from pm_arb_tasks.services.positions import snapshot_equity
from pm_arb_tasks.state.halt import is_halted
from pm_arb_tasks.state.market_data import save_books
from tests.support.risk import GUARDIAN_REDIS_DB, request, reset_book, risk_stores
from tests.support.trading import count

pytestmark = pytest.mark.integration
BANKROLL = D(200)  # the default INITIAL_BANKROLL: daily loss limit 20, drawdown limit 40
TOKEN = "held-yes"


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[None]:
    with risk_stores(GUARDIAN_REDIS_DB, MARKET_COOLDOWN_SECONDS="0"):
        yield


@pytest.fixture(autouse=True)
def held() -> Iterator[None]:
    """100 YES shares bought for $50, still open."""
    reset_book()
    with session_scope() as session:
        session.add(PositionRow(mode="paper", market_id="held", outcome="YES", token_id=TOKEN, quantity=D(100),
                                cost=D(50), fees=D(0), status="open"))  # fmt: skip
    yield
    with session_scope() as session:
        session.execute(delete(PositionRow))


def mark_at(bid: str) -> None:
    save_books([Book(token_id=TOKEN, bids=(BookLevel(price=D(bid), size=D(500)),), asks=(), observed_at=now())])


def now() -> datetime:
    return datetime.now(UTC)


def test_snapshot_is_bankroll_plus_realized_plus_unrealized() -> None:
    mark_at("0.62")
    assert snapshot_equity("paper", BANKROLL, now()) == D(212)
    with session_scope() as session:
        row = session.query(EquitySnapshotRow).one()
    assert (row.equity, row.realized_pnl, row.unrealized_pnl) == (D(212), D(0), D(12))


def test_giving_back_an_open_gain_past_the_drawdown_limit_halts() -> None:
    mark_at("0.90")  # +40 open: equity 240, the peak
    snapshot_equity("paper", BANKROLL, now() - timedelta(seconds=5))
    assert guardian.review(request("before", "5"), now()).approved
    mark_at("0.45")  # -5 open: equity 195, 45 below the peak (limit 40); realized P&L never moved
    snapshot_equity("paper", BANKROLL, now())
    decision = guardian.review(request("after", "5"), now())
    assert not decision.approved and decision.reason.startswith("drawdown limit")
    assert is_halted() and count(AlertRow, kind="risk_halt") == 1


def test_an_open_loss_today_counts_against_the_daily_limit() -> None:
    mark_at("0.50")  # flat: the day opened at 200
    snapshot_equity("paper", BANKROLL, now() - timedelta(days=1))
    mark_at("0.29")  # -21 open today (limit 20), nothing realized
    snapshot_equity("paper", BANKROLL, now())
    decision = guardian.review(request("today", "5"), now())
    assert not decision.approved and decision.reason.startswith("daily_loss limit")
    assert is_halted()

