"""Oracle adapters: parsing every bad value, the fallback chain's health rules, no raise ever."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pm_arb_tasks.adapters.http import UpstreamError, parse_retry_after
from pm_arb_tasks.adapters.oracles import supported
from pm_arb_tasks.adapters.oracles.binance import parse_binance
from pm_arb_tasks.adapters.oracles.coinbase import parse_coinbase
from pm_arb_tasks.adapters.oracles.coingecko import parse_coingecko
from pm_arb_tasks.adapters.oracles.fallback import (
    HealthPolicy,
    MemoryHealthStore,
    OracleFallback,
    ProviderHealth,
)
from pm_arb_tasks.adapters.parsing import to_decimal
from pm_arb_tasks.domain.models import Tick

NOW = datetime(2026, 4, 20, 12, 0, tzinfo=UTC)
BAD_PRICES: list[Any] = [
    None, "", " ", "NaN", "nan", "Infinity", "-Infinity", "inf", "1e999", "0", "0.0", "-1", "-0.5", 0, -3,
    float("nan"), float("inf"), True, False, [], {}, ["70000"], {"v": 1}, "abc", "70,000", "0x10",
]  # fmt: skip
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
BINANCE = {"BTCUSDT": "BTC", "ETHUSDT": "ETH"}
GECKO = {"bitcoin": "BTC", "ripple": "XRP"}


def test_binance_rows_become_ticks_with_the_provider_recorded() -> None:
    payload = [{"symbol": "BTCUSDT", "price": "70000.01000000"}, {"symbol": "ETHUSDT", "price": "3500.5"}]
    ticks = parse_binance(payload, BINANCE, NOW)
    assert ticks == [
        Tick(symbol="BTC", price=D("70000.01000000"), observed_at=NOW, provider="binance"),
        Tick(symbol="ETH", price=D("3500.5"), observed_at=NOW, provider="binance"),
    ]


@pytest.mark.parametrize("bad", BAD_PRICES, ids=repr)
def test_each_bad_price_is_dropped_with_one_log_line(bad: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    good = {"symbol": "ETHUSDT", "price": "3500"}
    assert [t.symbol for t in parse_binance([{"symbol": "BTCUSDT", "price": bad}, good], BINANCE, NOW)] == ["ETH"]
    assert parse_coinbase({"price": bad, "time": "x"}, "BTC", NOW) is None
    assert parse_coingecko({"bitcoin": {"usd": bad}, "ripple": {"usd": 0.6}}, GECKO, NOW)[0].symbol == "XRP"
    dropped = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 3 and all("BTC" in r.getMessage() for r in dropped)


def test_rows_for_other_or_doubled_symbols_are_dropped() -> None:
    payload = [
        {"symbol": "BTCUSDTUSDT", "price": "1"},
        {"symbol": ["BTCUSDT"], "price": "1"},
        "BTCUSDT",
        None,
        {"symbol": "BTCUSDT", "price": "70000"},
    ]
    assert [t.price for t in parse_binance(payload, BINANCE, NOW)] == [D("70000")]


@pytest.mark.parametrize("payload", [None, {}, "[]", 3, {"symbol": "BTCUSDT", "price": "1"}])
def test_binance_wrong_shape_is_an_upstream_error(payload: Any) -> None:
    with pytest.raises(UpstreamError):
        parse_binance(payload, BINANCE, NOW)


@pytest.mark.parametrize("payload", [None, [], "x", 1.5])
def test_coingecko_wrong_shape_is_an_upstream_error(payload: Any) -> None:
    with pytest.raises(UpstreamError):
        parse_coingecko(payload, GECKO, NOW)


def test_coinbase_wrong_shape_is_dropped() -> None:
    assert parse_coinbase(["price", "1"], "BTC", NOW) is None
    assert parse_coinbase({"price": "70000.12"}, "BTC", NOW).price == D("70000.12")  # type: ignore[union-attr]


def test_venue_formats_are_refused_as_symbols() -> None:
    assert supported(["BTC", "BTCUSDT", "BTC-USD", "bitcoin", "DOGE", "ETH"], "binance") == ["BTC", "ETH"]


@settings(max_examples=300, deadline=None)
@given(payload=JSON)
def test_arbitrary_json_never_raises_anything_but_upstream_error(payload: Any) -> None:
    for parse in (
        lambda: parse_binance(payload, BINANCE, NOW),
        lambda: parse_coingecko(payload, GECKO, NOW),
        lambda: parse_coinbase(payload, "BTC", NOW),
    ):
        try:
            ticks = parse()
        except UpstreamError:
            continue
        for tick in ticks if isinstance(ticks, list) else [ticks] if ticks else []:
            assert tick.price > 0 and tick.price.is_finite()


@settings(max_examples=200, deadline=None)
@given(value=JSON)
def test_arbitrary_values_in_a_valid_shape_never_raise(value: Any) -> None:
    parse_binance([{"symbol": "BTCUSDT", "price": value}, {"symbol": value, "price": "1"}], BINANCE, NOW)
    parse_coingecko({"bitcoin": {"usd": value}, "ripple": value}, GECKO, NOW)
    parse_coinbase({"price": value}, "BTC", NOW)
    ProviderHealth.from_json(value)
    to_decimal(value)


def test_to_decimal_refuses_bools_non_finite_and_absurd_magnitudes() -> None:
    assert to_decimal("0.585") == D("0.585") and to_decimal(0.01) == D("0.01") and to_decimal(5) == D(5)
    for bad in (True, "NaN", "sNaN", "Infinity", float("inf"), "1e999", "1e-40", "9" * 80, None, [], ""):
        assert to_decimal(bad) is None, bad


def test_retry_after_seconds_or_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Mon, 20 Apr 2026 12:00:30 GMT", NOW) == 30.0
    assert parse_retry_after("Mon, 20 Apr 2026 11:00:00 GMT", NOW) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after("nan") is None


# --- fallback chain -----------------------------------------------------------------------


class FakeProvider:
    """Scripted answers: a dict of prices, an UpstreamError to raise, or another exception."""

    def __init__(self, name: str, answers: dict[str, str] | Exception | None = None) -> None:
        self.name = name
        self.answer: dict[str, str] | Exception = answers if answers is not None else {}
        self.calls: list[list[str]] = []

    def fetch(self, symbols: Sequence[str], now: datetime) -> list[Tick]:
        self.calls.append(list(symbols))
        if isinstance(self.answer, Exception):
            raise self.answer
        return [
            Tick(symbol=s, price=D(p), observed_at=now, provider=self.name)
            for s, p in self.answer.items()
            if s in symbols
        ]


POLICY = HealthPolicy(
    failure_threshold=3,
    cooldown=timedelta(seconds=30),
    backoff_base=timedelta(seconds=2),
    backoff_max=timedelta(seconds=60),
    blocked_cooldown=timedelta(minutes=10),
)


def chain(*providers: FakeProvider) -> tuple[OracleFallback, MemoryHealthStore]:
    store = MemoryHealthStore()
    return OracleFallback(providers, store, POLICY), store


def by_symbol(ticks: list[Tick]) -> dict[str, str]:
    return {t.symbol: t.provider for t in ticks}


def test_priority_order_and_partial_fall_through() -> None:
    first = FakeProvider("binance", {"BTC": "70000"})
    second = FakeProvider("coinbase", {"BTC": "70001", "ETH": "3500"})
    third = FakeProvider("coingecko", {"SOL": "150"})
    fallback, _ = chain(first, second, third)
    assert by_symbol(fallback.fetch(["BTC", "ETH", "SOL"], NOW)) == {
        "BTC": "binance", "ETH": "coinbase", "SOL": "coingecko",
    }  # fmt: skip
    assert second.calls == [["ETH", "SOL"]] and third.calls == [["SOL"]]


def test_consecutive_failures_mark_unhealthy_then_recover_after_cooldown() -> None:
    first = FakeProvider("binance", UpstreamError("HTTP 503", status=503))
    second = FakeProvider("coinbase", {"BTC": "70001"})
    fallback, store = chain(first, second)
    for i in range(3):
        assert by_symbol(fallback.fetch(["BTC"], NOW + timedelta(seconds=i))) == {"BTC": "coinbase"}
    assert len(first.calls) == 3 and not store.states["binance"].available(NOW + timedelta(seconds=3))
    fallback.fetch(["BTC"], NOW + timedelta(seconds=10))
    assert len(first.calls) == 3  # skipped while cooling down
    first.answer = {"BTC": "70000"}
    assert by_symbol(fallback.fetch(["BTC"], NOW + timedelta(seconds=33))) == {"BTC": "binance"}
    assert store.states["binance"].clean


def test_one_more_failure_after_cooldown_reopens_it() -> None:
    first = FakeProvider("binance", UpstreamError("timeout"))
    fallback, store = chain(first, FakeProvider("coinbase", {"BTC": "1"}))
    for i in range(3):
        fallback.fetch(["BTC"], NOW + timedelta(seconds=i))
    fallback.fetch(["BTC"], NOW + timedelta(seconds=40))
    assert len(first.calls) == 4
    assert store.states["binance"].unhealthy_until == NOW + timedelta(seconds=70)


def test_rate_limit_backs_off_exponentially_and_honours_retry_after() -> None:
    first = FakeProvider("binance", UpstreamError("HTTP 429", status=429))
    fallback, store = chain(first, FakeProvider("coinbase", {"BTC": "1"}))
    fallback.fetch(["BTC"], NOW)
    assert store.states["binance"].unhealthy_until == NOW + timedelta(seconds=2)
    fallback.fetch(["BTC"], NOW + timedelta(seconds=2))
    assert store.states["binance"].unhealthy_until == NOW + timedelta(seconds=6)
    first.answer = UpstreamError("HTTP 429", status=429, retry_after=45)
    fallback.fetch(["BTC"], NOW + timedelta(seconds=6))
    assert store.states["binance"].unhealthy_until == NOW + timedelta(seconds=51)  # max(8 s, 45 s)
    for step in range(10):
        store.save("binance", ProviderHealth(rate_limits=10 + step))
        first.answer = UpstreamError("HTTP 429", status=429)
        fallback.fetch(["BTC"], NOW)
        assert store.states["binance"].unhealthy_until == NOW + POLICY.backoff_max


@pytest.mark.parametrize("status", [403, 451])
def test_geo_block_marks_unhealthy_at_once(status: int) -> None:
    first = FakeProvider("binance", UpstreamError("blocked", status=status))
    fallback, store = chain(first, FakeProvider("coinbase", {"BTC": "1"}))
    fallback.fetch(["BTC"], NOW)
    assert store.states["binance"].unhealthy_until == NOW + timedelta(minutes=10)


def test_empty_answers_and_provider_bugs_count_as_failures_and_never_raise() -> None:
    empty = FakeProvider("binance", {})
    buggy = FakeProvider("coinbase", ZeroDivisionError("bug"))
    fallback, store = chain(empty, buggy)
    assert fallback.fetch(["BTC"], NOW) == []
    assert store.states["binance"].failures == 1 and store.states["coinbase"].failures == 1


def test_duplicate_symbols_from_a_provider_keep_the_first_price() -> None:
    class Doubling(FakeProvider):
        def fetch(self, symbols: Sequence[str], now: datetime) -> list[Tick]:
            return super().fetch(symbols, now) * 2

    fallback, _ = chain(Doubling("binance", {"BTC": "70000"}))
    assert len(fallback.fetch(["BTC", "BTC"], NOW)) == 1


def test_health_round_trips_through_json() -> None:
    health = ProviderHealth(2, 1, NOW, "HTTP 429")
    assert ProviderHealth.from_json(health.to_json()) == health
    assert ProviderHealth.from_json({"failures": "x", "unhealthy_until": "garbage"}) == ProviderHealth()
