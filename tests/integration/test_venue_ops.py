"""The venue's beat tasks called as plain functions: settlement runs in paper mode too,
live-only upkeep does nothing in paper mode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from pm_arb_tasks.db.models import MarketRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.risk import book
from pm_arb_tasks.services import execution, outcomes, positions
from pm_arb_tasks.services.paper_venue import PaperVenue
from pm_arb_tasks.tasks import venue_ops
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.risk import exposure
from tests.support.trading import approved, make_request, seed_market
from tests.support.venue import AREA, REDIS_DB

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def paper_stores() -> Iterator[None]:
    with fresh_schema(AREA) as url:
        flush_redis(REDIS_DB)
        point_process_at(redis_db=REDIS_DB, database_url=url)
        yield


def filled_position(market_id: str) -> str:
    """A $4 paper buy at 0.40 (10 shares), recorded as persist would; returns its market id."""
    market = seed_market(market_id, ask="0.40")
    result = execution.execute(approved(make_request(market, amount="4")), PaperVenue(), lambda: datetime.now(UTC))
    assert result is not None and result.filled_amount == 10
    outcomes.record(result)
    return market.market_id


def resolve(market_id: str, winner: str = "NO") -> None:
    with session_scope() as session:
        session.add(MarketRow(market_id=market_id, kind="strike", tick_size=Decimal("0.01"),
                              min_order_size=Decimal(5), closed=True, winning_outcome=winner))


def position_status() -> str:
    with session_scope() as session:
        return session.scalars(select(PositionRow.status)).one()


def test_paper_position_settles_at_resolution_once() -> None:
    market_id = filled_position("0xsettle")
    marked = positions.pnl("paper")
    assert marked.unrealized == Decimal(10) * Decimal("0.38") - Decimal(4) and marked.unmarked == 0
    assert venue_ops.settle() == 0  # not resolved yet
    resolve(market_id)
    assert venue_ops.settle() == 1 and venue_ops.settle() == 0
    with session_scope() as session:
        position = session.scalar(select(PositionRow))
    assert position is not None and position.status == "settled" and position.realized_pnl == Decimal(-4)
    assert positions.pnl("paper").realized == Decimal(-4)


def test_a_position_settles_with_its_market_risk_release_or_not_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """A settled position whose release failed after its own commit would hold its market's
    reservation for good: nothing settles a settled position again. The two commit together."""
    market_id = filled_position("0xatomic")
    assert exposure(market_id) == exposure() == Decimal(4)  # the fill's kept cost
    resolve(market_id)

    def database_gone(*args: object) -> None:
        raise OperationalError("UPDATE risk_exposure", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patched:
        patched.setattr(book, "add_exposure", database_gone)
        assert venue_ops.settle() == 0
    assert position_status() == "open" and exposure() == Decimal(4)
    assert venue_ops.settle() == 1
    assert position_status() == "settled" and exposure(market_id) == exposure() == 0


def test_live_only_tasks_do_nothing_in_paper_mode() -> None:
    assert venue_ops.reconcile_orders() is None
    assert venue_ops.check_positions() is None
