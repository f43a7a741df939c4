"""Gamma discovery against the running simulator over real HTTP: pagination, the market set,
database upserts, resolution with the winner, outages mid-pagination and garbage rows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import requests
from sqlalchemy import func, select

from pm_arb_tasks.adapters.http import UpstreamError, make_session
from pm_arb_tasks.adapters.polymarket.gamma import GammaClient, parse_market
from pm_arb_tasks.db.models import MarketRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import MarketKind, Outcome
from pm_arb_tasks.services import marketdata
from pm_arb_tasks.sim import SimServer, running_sim
from pm_arb_tasks.sim.scenario import Scenario
from pm_arb_tasks.state.market_data import markets_for, tracked_token_ids
from tests.support.env import fresh_schema
from tests.support.marketdata import clear_faults, fault, marketdata_env

pytestmark = pytest.mark.integration
START = datetime(2026, 4, 20, 13, 7, tzinfo=UTC)  # 09:07 New York: today's strikes still open


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def sim(clock: Clock) -> Iterator[SimServer]:
    with running_sim(scenario=Scenario(31, clock=clock)) as server:
        yield server


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_schema("md") as url:
        yield url


@pytest.fixture(autouse=True)
def env(sim: SimServer, database: str, clock: Clock) -> Iterator[None]:
    clock.now = START
    with marketdata_env("gamma", sim.url, database):
        with session_scope() as session:
            session.query(MarketRow).delete()
        clear_faults(sim.url)
        yield
        clear_faults(sim.url)


def expected_open(sim: SimServer, horizon: timedelta = timedelta(days=7)) -> list[str]:
    now = sim.scenario.now()
    return sorted(m.condition_id for m in sim.scenario.market_list() if not m.closed and now <= m.end <= now + horizon)


def db_rows() -> dict[str, MarketRow]:
    with session_scope() as session:
        return {row.market_id: row for row in session.scalars(select(MarketRow))}


@pytest.mark.parametrize("page_size", [1, 7, 20, 500])
def test_pagination_reads_every_open_market_once(sim: SimServer, page_size: int) -> None:
    client = GammaClient(sim.url, make_session(), page_size=page_size)
    rows = client.active_rows(START)
    assert sorted(r["conditionId"] for r in rows) == expected_open(sim)
    pages = list(client.pages({"active": "true", "closed": "false"}))
    assert len(pages) == math.floor(len(sim.scenario.market_list()) / page_size) + 1


def test_events_are_paginated_too(sim: SimServer) -> None:
    seen: list[str] = []
    for offset in range(0, 1000, 4):
        page = requests.get(f"{sim.url}/events", params={"limit": 4, "offset": offset, "closed": "false"}).json()
        seen += [market["conditionId"] for event in page for market in event["markets"]]
        if len(page) < 4:
            break
    assert sorted(seen) == sorted(m.condition_id for m in sim.scenario.market_list())
    crypto = requests.get(f"{sim.url}/events", params={"tag_slug": "crypto", "limit": 500}).json()
    assert all(event["tags"][0]["slug"] == "crypto" for event in crypto)


def test_discovery_caches_indexes_and_upserts_every_market(sim: SimServer) -> None:
    report = marketdata.discover_markets(START)
    assert report.ok and report.dropped == 0 and report.other_symbols == 0
    assert report.kinds == {"strike": 80, "updown": 8, "unclassified": 2}
    rows = db_rows()
    assert sorted(rows) == expected_open(sim)
    btc = markets_for("BTC", START)
    assert {m.kind for m in btc} == {MarketKind.STRIKE, MarketKind.UPDOWN} and len(btc) == 22
    assert len(tracked_token_ids()) == 2 * (80 + 8)
    updown = next(m for m in btc if m.kind is MarketKind.UPDOWN and m.window_start and m.window_start <= START)
    row = rows[updown.market_id]
    assert (row.kind, row.symbol, row.window_start, row.fees_enabled) == ("updown", "BTC", updown.window_start, True)
    assert (row.fee_rate, row.fee_exponent, row.tick_size, row.min_order_size) == (D("0.07"), 1, D("0.01"), 5)
    assert row.yes_token_id == updown.yes_token_id and row.outcome_yes == "Up"
    unclassified = [r for r in rows.values() if r.kind == "unclassified"]
    assert len(unclassified) == 2 and all(r.symbol is None for r in unclassified)


def test_discovery_is_idempotent(sim: SimServer) -> None:
    marketdata.discover_markets(START)
    marketdata.discover_markets(START)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(MarketRow)) == len(expected_open(sim))


def test_only_configured_symbols_are_tracked(sim: SimServer, database: str) -> None:
    with marketdata_env("gamma", sim.url, database, SYMBOLS="BTC,ETH"):
        report = marketdata.discover_markets(START)
        assert report.other_symbols == 2 * 22 and report.kinds["strike"] == 40
        assert markets_for("SOL") == [] and len(markets_for("ETH")) == 22


def test_closed_markets_are_marked_with_their_winner(sim: SimServer, clock: Clock) -> None:
    marketdata.discover_markets(START)
    window = next(
        m for m in markets_for("BTC", START) if m.kind is MarketKind.UPDOWN and m.window_start <= START  # type: ignore[operator]
    )
    sim.scenario.jump("BTC", -4)  # Down
    clock.now = window.resolves_at + timedelta(minutes=1)  # type: ignore[operator]
    report = marketdata.discover_markets(clock.now)
    assert report.ok and report.resolved >= 1
    row = db_rows()[window.market_id]
    assert row.closed and row.winning_outcome == Outcome.NO.value
    assert window.market_id not in {m.market_id for m in markets_for("BTC", clock.now)}
    marketdata.discover_markets(clock.now)  # a later round never erases the winner
    assert db_rows()[window.market_id].winning_outcome == Outcome.NO.value


def test_gamma_outage_mid_pagination_keeps_the_previous_index(sim: SimServer) -> None:
    marketdata.discover_markets(START)
    before = tracked_token_ids()
    client = GammaClient(sim.url, make_session(retries=0), page_size=10)
    fault(sim.url, "gamma", status=500, skip=2, times=-1)
    with pytest.raises(UpstreamError):
        client.active_rows(START)
    report = marketdata.discover_markets(START)
    assert not report.ok and tracked_token_ids() == before


@pytest.mark.parametrize("spec", [{"mode": "truncated"}, {"mode": "html"}, {"mode": "raw", "body": '{"a": 1}'}])
def test_unusable_listings_fail_the_round_cleanly(sim: SimServer, spec: dict[str, object]) -> None:
    fault(sim.url, "gamma", times=-1, **spec)
    assert not marketdata.discover_markets(START).ok
    assert db_rows() == {}


def test_garbage_rows_are_dropped_or_unclassified_never_raised(sim: SimServer) -> None:
    fault(sim.url, "gamma", mode="garbage", times=-1)
    report = marketdata.discover_markets(START)
    assert report.ok and report.dropped > 0 and report.unclassified > 2
    assert report.rows == report.dropped + sum(report.kinds.values())


@pytest.mark.parametrize("value", [None, "", "NaN", 0, [], "x"])
def test_bad_rows_are_counted_as_dropped(sim: SimServer, value: object) -> None:
    fault(sim.url, "gamma", mode="value", value=value, times=-1)
    report = marketdata.discover_markets(START)
    assert report.ok and report.dropped == report.rows > 0 and db_rows() == {}


def test_rows_for_conditions_finds_closed_markets(sim: SimServer) -> None:
    target = sim.scenario.market_list()[0]
    sim.scenario.resolve(target.condition_id, 0)
    rows = GammaClient(sim.url, make_session()).rows_for_conditions([target.condition_id])
    market = parse_market(rows[0])
    assert market is not None and market.closed and market.winning_outcome is Outcome.YES
