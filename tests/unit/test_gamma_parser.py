"""Gamma rows -> Market: the recorded fixture, every market shape, garbage, arbitrary JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pm_arb_tasks.adapters.polymarket.gamma import parse_fee_schedule, parse_market
from pm_arb_tasks.domain.models import FeeSchedule, MarketKind, Outcome
from pm_arb_tasks.sim.scenario import Scenario

# A verbatim copy of the recorded payload in shared/fixtures/polymarket (kept in the repo for CI).
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "polymarket" / "gamma_market_btc_updown_15m.json"
ROW: dict[str, Any] = json.loads(FIXTURE.read_text())
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)


def row(**changes: Any) -> dict[str, Any]:
    return {**ROW, **changes}


def strike_row(**changes: Any) -> dict[str, Any]:
    base = row(
        question="Will the price of Bitcoin be above $70,000 on April 20?",
        slug="bitcoin-above-70k-on-april-20",
        outcomes='["Yes", "No"]',
        endDate="2026-04-20T16:00:00Z",
        groupItemTitle="70,000",
        feesEnabled=True,
        feeSchedule={"rate": 0.07, "exponent": 1, "takerOnly": True, "rebateRate": 0.2},
    )
    base.pop("eventStartTime")
    return {**base, **changes}


def test_recorded_updown_fixture_parses_completely() -> None:
    market = parse_market(ROW)
    assert market is not None
    assert market.market_id == "0x2e6af11e4b853b05ba7135239b21d77e808889b6ce1e735de856c94c4e5b5fce"
    assert (market.gamma_id, market.slug, market.symbol) == ("1066851", "btc-updown-15m-1767200400", "BTC")
    assert market.kind is MarketKind.UPDOWN and market.strike is None
    assert market.window_start == datetime(2025, 12, 31, 17, 0, tzinfo=UTC)
    assert market.resolves_at == datetime(2025, 12, 31, 17, 15, tzinfo=UTC)
    assert market.yes_token_id.startswith("88518485") and market.no_token_id.startswith("10181859")
    assert market.outcomes == ("Up", "Down")
    assert (market.tick_size, market.min_order_size) == (D("0.01"), D(5))
    assert not market.neg_risk and not market.fees_enabled and market.fee_schedule is None
    assert market.active and not market.closed and market.accepting_orders and market.winning_outcome is None


@pytest.mark.parametrize(
    ("prices", "winner"),
    [('["1", "0"]', Outcome.YES), ('["0", "1"]', Outcome.NO), ('["0.9995", "0.0005"]', None), ("garbage", None)],
)
def test_closed_market_carries_its_winner_only_when_known(prices: str, winner: Outcome | None) -> None:
    market = parse_market(row(closed=True, acceptingOrders=False, outcomePrices=prices))
    assert market is not None and market.closed and not market.accepting_orders
    assert market.winning_outcome is winner


def test_open_market_never_has_a_winner() -> None:
    assert parse_market(row(outcomePrices='["1", "0"]')).winning_outcome is None  # type: ignore[union-attr]


def test_strike_market_with_fee_schedule() -> None:
    market = parse_market(strike_row())
    assert market is not None and market.kind is MarketKind.STRIKE
    assert (market.symbol, market.strike) == ("BTC", D("70000"))
    assert market.resolves_at == datetime(2026, 4, 20, 16, 0, tzinfo=UTC) and market.window_start is None
    assert market.fees_enabled and market.fee_schedule == FeeSchedule(rate=D("0.07"), exponent=D(1))
    assert market.outcomes == ("Yes", "No")


@pytest.mark.parametrize(
    ("question", "symbol", "strike"),
    [
        ("Will the price of Ethereum be above $3,500 on April 20?", "ETH", D("3500")),
        ("Will the price of XRP be above $0.62 on April 20?", "XRP", D("0.62")),
        ("Will the price of Solana be above $150 on April 20?", "SOL", D("150")),
        ("Will Bitcoin be above $105,250.5 on April 20?", "BTC", D("105250.5")),
    ],
)
def test_strike_questions(question: str, symbol: str, strike: D) -> None:
    market = parse_market(strike_row(question=question))
    assert market is not None and (market.kind, market.symbol, market.strike) == (MarketKind.STRIKE, symbol, strike)


@pytest.mark.parametrize(
    "changes",
    [
        {"question": "Will the price of Bitcoin be below $70,000 on April 20?"},
        {"question": "Will the price of Bitcoin be between $68,000 and $70,000 on April 20?"},
        {"question": "Will Bitcoin reach $150,000 by December 31?"},
        {"question": "Will the price of Dogecoin be above $1 on April 20?"},
        {"question": "Will the price of Bitcoin be above $70,000 on April 21?"},  # endDate is April 20
        {"endDate": "not a date"},
        {"outcomes": '["Up", "Down"]'},
        {"orderPriceMinTickSize": "NaN"},
        {"orderMinSize": None},
        {"clobTokenIds": '["only-one"]'},
        {"clobTokenIds": "[not json"},
    ],
)
def test_unrecognised_or_broken_strike_rows_are_unclassified_never_guessed(changes: dict[str, Any]) -> None:
    market = parse_market(strike_row(**changes))
    assert market is not None and market.kind is MarketKind.UNCLASSIFIED and market.strike is None


@pytest.mark.parametrize("question", ["NaN", "Bitcoin", "Will the price of Bitcoin be above $70,000 on April 20"])
def test_a_strike_slug_with_an_unreadable_question_is_unclassified_and_logged(
    question: str, caplog: pytest.LogCaptureFixture
) -> None:
    market = parse_market(strike_row(question=question))
    assert market is not None and market.kind is MarketKind.UNCLASSIFIED and market.strike is None
    assert market.symbol == "BTC"  # counted with its symbol, never traded
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "not a strike question" in caplog.text


def test_non_crypto_market_is_unclassified_without_a_symbol() -> None:
    market = parse_market(
        strike_row(question="Will the Fed cut rates in June?", slug="fed-cut-june", feesEnabled=False)
    )
    assert market is not None and market.kind is MarketKind.UNCLASSIFIED and market.symbol is None
    assert market.yes_token_id and market.outcomes == ("Yes", "No")


def test_updown_window_start_from_slug_when_event_start_is_missing() -> None:
    data = row()
    data.pop("eventStartTime")
    market = parse_market(data)
    assert market is not None and market.window_start == datetime(2025, 12, 31, 17, 0, tzinfo=UTC)


def test_updown_other_window_lengths() -> None:
    market = parse_market(row(slug="eth-updown-1h-1767200400", endDate="2025-12-31T18:00:00Z"))
    assert market is not None and (market.kind, market.symbol) == (MarketKind.UPDOWN, "ETH")
    hourly = parse_market(
        row(slug="bitcoin-up-or-down-december-31-12pm-et", question="Bitcoin Up or Down - December 31, 12PM ET",
            endDate="2025-12-31T18:00:00Z")
    )  # fmt: skip
    assert hourly is not None and hourly.kind is MarketKind.UPDOWN
    assert hourly.window_start == datetime(2025, 12, 31, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "changes",
    [
        {"eventStartTime": "2025-12-31T17:05:00Z"},  # disagrees with the slug
        {"eventStartTime": ""},  # present but unreadable: the slug's start is not a licence to guess
        {"eventStartTime": "yesterday"},
        {"endDate": "2025-12-31T17:30:00Z"},  # not a 15-minute window
        {"outcomes": '["Yes", "No"]'},
        {"eventStartTime": None, "slug": "bitcoin-up-or-down"},
        {"slug": "doge-updown-15m-1767200400", "question": "Dogecoin Up or Down - December 31"},
    ],
)
def test_broken_updown_rows_are_unclassified(changes: dict[str, Any]) -> None:
    market = parse_market(row(**changes))
    assert market is not None and market.kind is MarketKind.UNCLASSIFIED and market.window_start is None


@pytest.mark.parametrize("bad", [None, "", 42, {}, [], "x" * 200])
def test_rows_without_a_condition_id_are_dropped(bad: Any) -> None:
    assert parse_market(row(conditionId=bad)) is None


def test_flags_and_odd_types() -> None:
    market = parse_market(row(negRisk="true", acceptingOrders="false", active=None, enableOrderBook=True, id=7))
    assert market is not None and market.neg_risk and not market.accepting_orders and not market.active
    assert market.gamma_id == "7"
    assert not parse_market(row(enableOrderBook=False)).accepting_orders  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"rate": 0.07, "exponent": 1, "takerOnly": True}, FeeSchedule(rate=D("0.07"), exponent=D(1))),
        ('{"rate": "0.0624", "exponent": 2, "takerOnly": false}',
         FeeSchedule(rate=D("0.0624"), exponent=D(2), taker_only=False)),
        ({"rate": "NaN"}, None), ({"rate": -1}, None), ({"rate": 0.07, "exponent": 0}, None),
        (None, None), ("", None), ("oops", None), ([0.07], None),
    ],
)  # fmt: skip
def test_fee_schedules(value: Any, expected: FeeSchedule | None) -> None:
    assert parse_fee_schedule(value) == expected


def test_every_simulated_row_parses_to_its_kind() -> None:
    scenario = Scenario(3, clock=lambda: datetime(2026, 4, 20, 13, 7, tzinfo=UTC))
    now = scenario.now()
    kinds = {"strike": MarketKind.STRIKE, "updown": MarketKind.UPDOWN, "other": MarketKind.UNCLASSIFIED}
    markets = scenario.market_list()
    assert {m.kind for m in markets} == set(kinds)
    for sim_market in markets:
        market = parse_market(scenario.gamma_row(sim_market, now))
        assert market is not None and market.kind is kinds[sim_market.kind], sim_market.question
        assert market.symbol == sim_market.symbol and market.strike == sim_market.strike
        assert market.fees_enabled == sim_market.fees_enabled
        assert (market.yes_token_id, market.no_token_id) == sim_market.tokens


@settings(max_examples=300, deadline=None)
@given(payload=JSON)
def test_arbitrary_json_never_raises(payload: Any) -> None:
    parse_market(payload)
    parse_fee_schedule(payload)


FIELDS = st.sampled_from([*sorted(ROW), "feeSchedule", "groupItemTitle"])


@settings(max_examples=400, deadline=None)
@given(changes=st.dictionaries(FIELDS, JSON, max_size=6), base=st.sampled_from(["updown", "strike"]))
def test_arbitrary_field_values_never_raise(changes: dict[str, Any], base: str) -> None:
    market = parse_market(row(**changes) if base == "updown" else strike_row(**changes))
    if market is not None and market.kind is not MarketKind.UNCLASSIFIED:
        assert market.yes_token_id and market.no_token_id and market.resolves_at is not None
        assert 0 < market.tick_size < 1 and market.min_order_size > 0
