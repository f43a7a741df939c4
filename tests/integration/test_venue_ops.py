"""The venue's beat tasks called as plain functions: settlement runs in paper mode too,
live-only upkeep does nothing in paper mode."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from pm_arb_tasks.db.models import MarketRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.services import execution, outcomes, positions
from pm_arb_tasks.tasks import venue_ops
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.trading import approved, make_request, seed_market
from tests.support.venue import AREA, REDIS_DB

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def paper_stores() -> Iterator[None]:
    with fresh_schema(AREA) as url:
        flush_redis(REDIS_DB)
        point_process_at(redis_db=REDIS_DB, database_url=url)
        yield


def test_paper_position_settles_at_resolution_once() -> None:
    from pm_arb_tasks.services.paper_venue import PaperVenue

    market = seed_market("0xsettle", ask="0.40")
    result = execution.execute(approved(make_request(market, amount="4")), PaperVenue(), lambda: datetime.now(UTC))
    assert result is not None and result.filled_amount == 10
    outcomes.record(result)
    marked = positions.pnl("paper")
    assert marked.unrealized == Decimal(10) * Decimal("0.38") - Decimal(4) and marked.unmarked == 0
    assert venue_ops.settle() == 0  # not resolved yet
    with session_scope() as session:
        session.add(MarketRow(market_id=market.market_id, kind="strike", tick_size=Decimal("0.01"),
                              min_order_size=Decimal(5), closed=True, winning_outcome="NO"))
    assert venue_ops.settle() == 1 and venue_ops.settle() == 0
    with session_scope() as session:
        position = session.scalar(select(PositionRow))
    assert position is not None and position.status == "settled" and position.realized_pnl == Decimal(-4)
    assert positions.pnl("paper").realized == Decimal(-4)


def test_live_only_tasks_do_nothing_in_paper_mode() -> None:
    assert venue_ops.reconcile_orders() is None
    assert venue_ops.check_positions() is None
