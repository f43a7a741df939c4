"""Invariant 2, end to end through real scan, risk, execute and persist workers: a stale oracle tick,
a late scan and a stale book never produce an order, while the same market on fresh data does.

Each case has its own market (the per-market cooldowns would otherwise hide an order) whose
strike sits far below spot, so the fresh-data control has an edge no fee can eat.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from celery import chain
from sqlalchemy import select

from chaos.harness import ChaosRedis, driver_pointed_at, free_port, stack_environment
from pm_arb_tasks.db.models import OpportunityRow, PaperTradeRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import Book, BookLevel, Market, MarketKind, Tick
from pm_arb_tasks.services.scanning import VOLATILITY_KEY
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.market_data import TICKS_KEY, save_books, save_markets, save_ticks, track_markets
from pm_arb_tasks.state.redis_client import get_redis
from pm_arb_tasks.tasks.pipeline import alert_outcome, execute_order, persist_outcome
from tests.support.env import fresh_schema
from tests.support.trading import approved, make_request, paper_orders
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
SPOT = D("70000")
SCAN = "pm_arb.scan.symbols"


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Worker]]:
    work = Path(tmp_path_factory.mktemp("staleness"))
    server = ChaosRedis(free_port(), work / "redis")
    server.start()
    try:
        with fresh_schema("chaos") as url:
            env = stack_environment(redis_url=server.url(), database_url=url, sim_url="http://127.0.0.1:9",
                                    pushover=False, INITIAL_BANKROLL="200")  # fmt: skip
            with driver_pointed_at(env):
                queues = {"scan": "scan", "risk": "risk", "execute": "execute", "persist": "persist,alert,ops"}
                procs = {name: Worker(name, q, {**os.environ}) for name, q in queues.items()}
                with running(*procs.values()):
                    yield procs
    finally:
        server.stop()


def seed(*, tick_age: float = 0, book_age: float = 0) -> Market:
    """A BTC strike market at 60,000 with spot 70,000 (fair value near 1) asking 0.50: a large edge.
    Oracle history for the volatility estimate ends `tick_age` seconds ago; books are `book_age` old."""
    now = datetime.now(UTC)
    market_id = f"0xstale{uuid.uuid4().hex[:12]}"
    market = Market(
        market_id=market_id, symbol="BTC", kind=MarketKind.STRIKE, strike=D("60000"),
        resolves_at=now + timedelta(days=1), yes_token_id=f"{market_id}-yes", no_token_id=f"{market_id}-no",
        question="Will the price of Bitcoin be above $60,000 on April 20?",
    )  # fmt: skip
    save_markets([market])
    track_markets([market], ["BTC"])
    last = now - timedelta(seconds=tick_age)
    get_redis().delete(TICKS_KEY.format(symbol="BTC"), VOLATILITY_KEY.format(symbol="BTC"))  # earlier cases' ticks
    save_ticks(
        Tick(symbol="BTC", price=SPOT * (1 + D(i % 3 - 1) / 1000), observed_at=last - timedelta(seconds=30 - i),
             provider="binance")
        for i in range(31)
    )  # fmt: skip
    observed = now - timedelta(seconds=book_age)
    save_books(
        Book(token_id=token, asks=(BookLevel(price=D("0.50"), size=D(1000)),),
             bids=(BookLevel(price=D("0.48"), size=D(1000)),), observed_at=observed)
        for token in (market.yes_token_id, market.no_token_id)
    )  # fmt: skip
    return market


def scan(market: Market, tick_at: datetime | None = None) -> None:
    from pm_arb_tasks.celery_app import app

    app.send_task(SCAN, args=[["BTC"]], kwargs={"tick_at": (tick_at or datetime.now(UTC)).isoformat()})


def reasons(market: Market, since: datetime) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(OpportunityRow.reason).where(
                    OpportunityRow.observed_at >= since, OpportunityRow.market_id.in_((market.market_id, "*"))
                )
            )
        )


def orders_for(market: Market) -> list[str]:
    with session_scope() as session:
        ids = set(session.scalars(select(PaperTradeRow.request_id).where(PaperTradeRow.market_id == market.market_id)))
    return [o for o in paper_orders() if o.removeprefix("paper-") in ids]


def settles_without_order(market: Market, since: datetime, reason: str) -> None:
    wait_for(lambda: reason in reasons(market, since), timeout=30, what=f"the scan to log {reason!r}")
    assert orders_for(market) == []


def test_fresh_data_trades_the_edge(workers: dict[str, Worker]) -> None:
    market = seed()
    scan(market)
    wait_for(lambda: orders_for(market), timeout=60, what="an order on fresh data")
    assert len(orders_for(market)) == 1


def test_a_stale_oracle_tick_places_nothing(workers: dict[str, Worker]) -> None:
    since = datetime.now(UTC)
    stale_after = 3 * get_settings().oracle_poll_seconds
    market = seed(tick_age=stale_after + 2)
    scan(market)
    settles_without_order(market, since, "stale data")


def test_a_late_scan_places_nothing(workers: dict[str, Worker]) -> None:
    """A scan message that waited longer than the trade TTL (a slow queue) is not acted on."""
    market = seed()
    since = datetime.now(UTC)
    refused = workers["scan"].log().count("'late scan': 1")
    scan(market, tick_at=datetime.now(UTC) - timedelta(seconds=get_settings().trade_ttl_seconds + 1))
    wait_for(lambda: workers["scan"].log().count("'late scan': 1") > refused, timeout=30, what="the late scan")
    assert orders_for(market) == [] and reasons(market, since) == []


def test_a_stale_book_places_nothing(workers: dict[str, Worker]) -> None:
    since = datetime.now(UTC)
    market = seed(book_age=3 * get_settings().book_poll_seconds + 2)
    scan(market)
    settles_without_order(market, since, "stale data")


def test_a_book_gone_stale_before_execution_places_nothing(workers: dict[str, Worker]) -> None:
    """The executor's own check: an approved request whose book aged past the limit meanwhile."""
    market = seed(book_age=3 * get_settings().book_poll_seconds + 2)
    request = make_request(market, ttl=30)
    chain(execute_order.s(approved(request).model_dump(mode="json")), persist_outcome.s(), alert_outcome.s()).delay()
    row = wait_for(lambda: _row(request.request_id), timeout=60, what="the refused outcome")
    assert (row.status, row.error_message.startswith("stale order book")) == ("failed", True)
    assert orders_for(market) == []


def _row(request_id: str) -> PaperTradeRow | None:
    with session_scope() as session:
        return session.scalar(select(PaperTradeRow).where(PaperTradeRow.request_id == request_id))

