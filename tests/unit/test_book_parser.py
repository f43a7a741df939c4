"""CLOB books -> Book (sorted, bad levels dropped), and the simulator's book/take semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pm_arb_tasks.adapters.polymarket.books import parse_book, parse_books
from pm_arb_tasks.domain.models import BookLevel
from pm_arb_tasks.sim.scenario import Scenario

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
REAL = {
    "market": "0x2e6af11e4b853b05ba7135239b21d77e808889b6ce1e735de856c94c4e5b5fce",
    "asset_id": "8851848546962572193739008211889046036776198486765606333032192644001246174440",
    "timestamp": "1767200700123",
    "hash": "a4c02e55397766c5f060a5b620e0c79e01a8e61f",
    "bids": [{"price": "0.46", "size": "50"}, {"price": "0.48", "size": "120"}, {"price": "0.47", "size": "10.5"}],
    "asks": [{"price": "0.55", "size": "30"}, {"price": "0.52", "size": "200"}, {"price": "0.53", "size": "15"}],
    "min_order_size": "5",
    "tick_size": "0.01",
    "neg_risk": False,
    "last_trade_price": "0.50",
}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


def levels(*pairs: tuple[str, str]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(price=D(p), size=D(s)) for p, s in pairs)


def test_real_shape_is_sorted_best_first() -> None:
    book = parse_book(REAL, NOW)
    assert book is not None and book.token_id == REAL["asset_id"] and book.observed_at == NOW
    assert book.bids == levels(("0.48", "120"), ("0.47", "10.5"), ("0.46", "50"))
    assert book.asks == levels(("0.52", "200"), ("0.53", "15"), ("0.55", "30"))
    assert (book.tick_size, book.min_order_size) == (D("0.01"), D(5))
    assert book.best_ask == BookLevel(price=D("0.52"), size=D("200"))


@pytest.mark.parametrize(
    "bad",
    [
        {"price": None, "size": "10"}, {"price": "", "size": "10"}, {"price": "NaN", "size": "10"},
        {"price": "Infinity", "size": "10"}, {"price": "0", "size": "10"}, {"price": "-0.5", "size": "10"},
        {"price": "1", "size": "10"}, {"price": "1.5", "size": "10"}, {"price": "0.5", "size": "0"},
        {"price": "0.5", "size": "-3"}, {"price": "0.5", "size": "NaN"}, {"price": "0.5"}, {"size": "10"},
        {"price": True, "size": "10"}, {"price": ["0.5"], "size": "10"}, "0.5", None, 7, [],
    ],
    ids=repr,
)  # fmt: skip
def test_bad_levels_are_dropped(bad: Any) -> None:
    book = parse_book({**REAL, "asks": [bad, {"price": "0.52", "size": "200"}], "bids": [bad]}, NOW)
    assert book is not None and book.asks == levels(("0.52", "200")) and book.bids == ()


def test_duplicate_prices_are_merged() -> None:
    book = parse_book({**REAL, "asks": [{"price": "0.52", "size": "1"}, {"price": "0.520", "size": "2"}]}, NOW)
    assert book is not None and book.asks == levels(("0.52", "3"))


@pytest.mark.parametrize("bad", [None, "", 5, {}, ["x"], "x" * 101])
def test_books_without_asset_id_are_dropped(bad: Any) -> None:
    assert parse_book({**REAL, "asset_id": bad}, NOW) is None


def test_missing_or_wrong_sides_are_empty_and_bad_tick_is_ignored() -> None:
    book = parse_book({"asset_id": "1", "bids": "oops", "tick_size": "NaN", "min_order_size": -1}, NOW)
    assert book is not None and book.bids == () and book.asks == ()
    assert book.tick_size is None and book.min_order_size is None


def test_batch_payloads() -> None:
    assert [b.token_id for b in parse_books([REAL, None, {"asset_id": "2"}], NOW)] == [REAL["asset_id"], "2"]
    assert parse_books({"error": "x"}, NOW) == [] and parse_books(None, NOW) == []


@settings(max_examples=300, deadline=None)
@given(payload=JSON)
def test_arbitrary_json_never_raises(payload: Any) -> None:
    parse_books(payload, NOW)
    parse_book(payload, NOW)


@settings(max_examples=300, deadline=None)
@given(bids=JSON, asks=JSON, tick=JSON)
def test_arbitrary_sides_never_raise_and_stay_sorted(bids: Any, asks: Any, tick: Any) -> None:
    book = parse_book({**REAL, "bids": bids, "asks": asks, "tick_size": tick}, NOW)
    assert book is not None
    assert [level.price for level in book.bids] == sorted((level.price for level in book.bids), reverse=True)
    assert [level.price for level in book.asks] == sorted(level.price for level in book.asks)
    assert all(0 < level.price < 1 and level.size > 0 for level in book.bids + book.asks)


# --- the simulator's books ------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def strike_token(scenario: Scenario, symbol: str = "BTC") -> tuple[str, str]:
    market = next(m for m in scenario.market_list() if m.kind == "strike" and m.symbol == symbol)
    return market.tokens


def test_simulated_books_parse_with_the_spread_around_fair_value() -> None:
    scenario = Scenario(7, clock=Clock(NOW))
    for market in scenario.market_list():
        for token in market.tokens:
            book = parse_book(scenario.book(token), NOW)
            assert book is not None and book.best_bid and book.best_ask
            assert book.best_bid.price < book.best_ask.price
            assert len(book.bids) <= 5 and len(book.asks) <= 5


def test_same_seed_same_world() -> None:
    clocks = [Clock(NOW), Clock(NOW)]
    one, two = (Scenario(11, clock=clock) for clock in clocks)
    for clock in clocks:
        clock.now = NOW + timedelta(seconds=600)
    assert one.spots() == two.spots()
    assert [m.condition_id for m in one.market_list()] == [m.condition_id for m in two.market_list()]
    token = strike_token(one)[0]
    assert one.book(token) == two.book(token)
    assert Scenario(12, clock=Clock(NOW + timedelta(seconds=600))).spots() != one.spots()


def test_books_reprice_only_after_the_lag() -> None:
    clock = Clock(NOW)
    scenario = Scenario(5, clock=clock, settings={"book_lag_seconds": 5, "annual_vol": 0.0001})
    yes = strike_token(scenario)[0]
    before = scenario.book(yes)["asks"][-1]["price"]
    scenario.jump("BTC", 5)
    clock.now += timedelta(seconds=2)
    assert scenario.book(yes)["asks"][-1]["price"] == before  # still lagging
    clock.now += timedelta(seconds=4)
    assert D(scenario.book(yes)["asks"][-1]["price"]) > D(before)


def test_take_consumes_liquidity_at_or_better_than_the_limit() -> None:
    scenario = Scenario(5, clock=Clock(NOW))
    yes = strike_token(scenario)[0]
    asks = sorted((D(level["price"]), D(level["size"])) for level in scenario.book(yes)["asks"])
    best, second = asks[0], asks[1]
    assert scenario.available(yes, "BUY", best[0]) == best[1]
    fills = scenario.take(yes, "BUY", second[0], best[1] + 1)
    assert fills == [best, (second[0], D(1))]
    assert scenario.available(yes, "BUY", second[0]) == second[1] - 1
    assert scenario.take(yes, "BUY", best[0] - D("0.01"), D(10)) == []
    bids = sorted(((D(lv["price"]), D(lv["size"])) for lv in scenario.book(yes)["bids"]), reverse=True)
    assert scenario.take(yes, "SELL", bids[0][0], D(1)) == [(bids[0][0], D(1))]


def test_windows_roll_and_resolve_from_the_path() -> None:
    clock = Clock(datetime(2026, 4, 20, 12, 3, tzinfo=UTC))
    scenario = Scenario(5, clock=clock, symbols=["BTC"])
    current = scenario.market_by_slug(f"btc-updown-15m-{int(datetime(2026, 4, 20, 12, 0, tzinfo=UTC).timestamp())}")
    assert current is not None and not current.closed
    scenario.jump("BTC", 3)
    clock.now = datetime(2026, 4, 20, 12, 16, tzinfo=UTC)
    scenario.market_list()
    assert current.closed and current.winner == 0  # Up after a +3 % jump
    assert scenario.log("resolution")[0]["slug"] == current.slug
    upcoming = scenario.market_by_slug(f"btc-updown-15m-{int(datetime(2026, 4, 20, 12, 30, tzinfo=UTC).timestamp())}")
    assert upcoming is not None
