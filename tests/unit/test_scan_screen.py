"""The scanner's float screen never changes a decision: whatever it settles without the full book,
the exact Decimal evaluation would have settled the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from pm_arb_tasks.domain.edge import Reason, evaluate_outcome
from pm_arb_tasks.domain.fees import schedule_for
from pm_arb_tasks.domain.models import Book, BookLevel, FeeSchedule, Market, MarketKind, Outcome
from pm_arb_tasks.domain.pricing import fair_yes_float
from pm_arb_tasks.services.scanning import ScanParams, evaluate_market

NOW = datetime(2026, 4, 20, 12, tzinfo=UTC)
PARAMS = ScanParams(
    min_edge=D("0.02"), max_trade=D(20), position_limit=D(20), strategy="fixed", bankroll=D(200),
    book_max_age=timedelta(seconds=6),
)


def market(strike: D, hours: int, fees: bool) -> Market:
    return Market(
        market_id="m", symbol="BTC", kind=MarketKind.STRIKE, strike=strike, resolves_at=NOW + timedelta(hours=hours),
        yes_token_id="y", no_token_id="n", fees_enabled=fees,
        fee_schedule=FeeSchedule(rate=D("0.07")) if fees else None,
    )


def book(token: str, asks: list[D], age: float = 0) -> Book:
    levels = tuple(BookLevel(price=p, size=D(50)) for p in sorted(asks))
    return Book(token_id=token, asks=levels, observed_at=NOW - timedelta(seconds=age))


def test_a_lagging_market_is_emitted_and_a_stale_book_is_reported() -> None:
    m = market(D(69000), 24, fees=False)
    prob = fair_yes_float(m, 70000.0, 0.5, NOW)
    books = {"y": book("y", [D(str(round(prob - 0.1, 2)))]), "n": book("n", [D("0.99")], age=60)}
    scanned = evaluate_market(m, spot=70000.0, sigma=0.5, now=NOW, window_open=None, books=books, exposure=D(0),
                              params=PARAMS)
    reasons = {e.outcome: e.reason for e in scanned.evaluations}
    assert reasons == {Outcome.YES: Reason.EMITTED, Outcome.NO: Reason.STALE}


def test_exposure_shrinks_the_size() -> None:
    m = market(D(69000), 24, fees=False)
    prob = fair_yes_float(m, 70000.0, 0.5, NOW)
    books = {"y": book("y", [D(str(round(prob - 0.1, 2)))]), "n": book("n", [D("0.99")])}
    scanned = evaluate_market(m, spot=70000.0, sigma=0.5, now=NOW, window_open=None, books=books, exposure=D(12),
                              params=PARAMS)
    emitted = next(e for e in scanned.evaluations if e.reason is Reason.EMITTED)
    assert emitted.sizing is not None and emitted.sizing.amount == D(8)


prices = st.decimals(min_value=D("0.01"), max_value=D("0.99"), places=2)


@given(
    st.integers(min_value=60000, max_value=80000), st.integers(min_value=1, max_value=96), st.booleans(),
    st.floats(min_value=60000, max_value=80000), st.floats(min_value=0.05, max_value=3),
    st.lists(prices, max_size=3), st.lists(prices, max_size=3),
)
def test_the_screen_agrees_with_the_exact_evaluation(
    strike: int, hours: int, fees: bool, spot: float, sigma: float, yes_asks: list[D], no_asks: list[D]
) -> None:
    m = market(D(strike), hours, fees)
    books = {"y": book("y", yes_asks), "n": book("n", no_asks)}
    scanned = evaluate_market(m, spot=spot, sigma=sigma, now=NOW, window_open=None, books=books, exposure=D(0),
                              params=PARAMS)
    prob_yes = D(repr(fair_yes_float(m, spot, sigma, NOW)))
    exact = {
        outcome: evaluate_outcome(
            outcome=outcome, prob=prob, asks=books[token].asks, schedule=schedule_for(m), min_edge=PARAMS.min_edge,
            tick=m.tick_size, max_trade=PARAMS.max_trade, room=PARAMS.position_limit, min_order_size=m.min_order_size,
        )
        for outcome, token, prob in ((Outcome.YES, "y", prob_yes), (Outcome.NO, "n", 1 - prob_yes))
    }
    looked_at = {e.outcome: e for e in scanned.evaluations}
    for outcome, expected in exact.items():
        if outcome in looked_at:
            assert looked_at[outcome].reason is expected.reason
            if expected.reason is not Reason.BELOW_THRESHOLD:
                assert looked_at[outcome] == expected
        else:
            assert expected.reason is Reason.NO_EDGE
    assert scanned.no_edge == sum(1 for o in exact if o not in looked_at)
