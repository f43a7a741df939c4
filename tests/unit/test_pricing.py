"""Fair value Φ(d2) for both market kinds, hand-computed, and the EWMA volatility."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pm_arb_tasks.domain.edge import Reason
from pm_arb_tasks.domain.models import Market, MarketKind
from pm_arb_tasks.domain.pricing import (
    SECONDS_PER_YEAR,
    Unpriceable,
    ewma_volatility,
    fair_yes,
    prob_above,
    years_between,
)

NOW = datetime(2026, 4, 20, 12, 10, tzinfo=UTC)


def close(value: D, expected: str, tol: str = "0.0001") -> bool:
    return abs(value - D(expected)) <= D(tol)


def test_at_the_money_strike_three_months() -> None:
    # d2 = (ln 1 - 0.5^2 * 0.25 / 2) / (0.5 * sqrt 0.25) = -0.03125 / 0.25 = -0.125; Phi(-0.125) = 0.45026
    assert close(prob_above(D(100), D(100), D("0.5"), D("0.25")), "0.45026")


def test_strike_market_five_percent_in_the_money_one_month() -> None:
    # ln 1.05 = 0.048790; sigma^2 tau / 2 = 0.64 / 24 = 0.026667; sigma sqrt(tau) = 0.8 * 0.288675 = 0.230940
    # d2 = 0.022124 / 0.230940 = 0.095799; Phi(0.0958) = 0.53816
    market = Market(
        market_id="m", kind=MarketKind.STRIKE, strike=D(100), resolves_at=NOW + timedelta(days=365 / 12)
    )
    assert close(fair_yes(market, D(105), D("0.8"), NOW), "0.53816")


def test_updown_window_uses_the_price_at_the_window_start() -> None:
    # 5 minutes left: tau = 300 / 31,536,000 = 9.5129e-6 y; sigma sqrt(tau) = 0.6 * 0.0030843 = 0.0018506
    # ln(100.2 / 100) = 0.0019980; minus sigma^2 tau / 2 = 1.71e-6 -> d2 = 1.07873; Phi = 0.85965
    market = Market(
        market_id="m", kind=MarketKind.UPDOWN, window_start=NOW - timedelta(minutes=10),
        resolves_at=NOW + timedelta(minutes=5),
    )
    assert close(fair_yes(market, D("100.2"), D("0.6"), NOW, window_open_price=D(100)), "0.85965")


def test_updown_not_priced_before_the_window_or_without_its_open_price() -> None:
    market = Market(
        market_id="m", kind=MarketKind.UPDOWN, window_start=NOW + timedelta(minutes=1),
        resolves_at=NOW + timedelta(minutes=16),
    )
    with pytest.raises(Unpriceable) as early:
        fair_yes(market, D(100), D("0.6"), NOW, window_open_price=D(100))
    assert early.value.reason is Reason.WINDOW_NOT_OPEN
    opened = market.model_copy(update={"window_start": NOW - timedelta(minutes=1)})
    with pytest.raises(Unpriceable) as unknown:
        fair_yes(opened, D(100), D("0.6"), NOW, window_open_price=None)
    assert unknown.value.reason is Reason.NO_STRIKE


def test_unclassified_and_resolved_markets_are_not_priced() -> None:
    with pytest.raises(Unpriceable) as unclassified:
        fair_yes(Market(market_id="m", resolves_at=NOW + timedelta(days=1)), D(100), D("0.5"), NOW)
    assert unclassified.value.reason is Reason.UNCLASSIFIED
    past = Market(market_id="m", kind=MarketKind.STRIKE, strike=D(100), resolves_at=NOW)
    with pytest.raises(Unpriceable) as closed:
        fair_yes(past, D(100), D("0.5"), NOW)
    assert closed.value.reason is Reason.CLOSED


def test_years_between() -> None:
    assert years_between(NOW, NOW + timedelta(days=365)) == 1


@given(
    st.decimals(min_value=D(1), max_value=D(200000), places=2),
    st.decimals(min_value=D(1), max_value=D(200000), places=2),
    st.decimals(min_value=D("0.05"), max_value=D(5), places=3),
    st.decimals(min_value=D("0.000001"), max_value=D(2), places=6),
)
def test_probability_is_between_zero_and_one_and_rises_with_spot(spot: D, strike: D, sigma: D, tau: D) -> None:
    p = prob_above(spot, strike, sigma, tau)
    assert 0 <= p <= 1
    assert prob_above(spot * D("1.01"), strike, sigma, tau) >= p


def series(step: float, n: int, dt: float = 1.0) -> list[tuple[datetime, D]]:
    return [(NOW + timedelta(seconds=i * dt), D(str(100 * math.exp(step * i)))) for i in range(n)]


def test_ewma_of_constant_returns_is_that_return_annualised() -> None:
    sigma = ewma_volatility(series(0.0001, 60), 600, D("0.01"), D(10))
    assert sigma is not None and close(sigma, str(0.0001 * math.sqrt(SECONDS_PER_YEAR)), "0.001")


def test_ewma_scales_returns_by_their_interval() -> None:
    # the same per-second variance sampled every 4 s: returns twice as large, same sigma
    sigma = ewma_volatility(series(0.0002, 60, dt=4.0), 600, D("0.01"), D(10))
    assert sigma is not None and close(sigma, str(0.0001 * math.sqrt(SECONDS_PER_YEAR)), "0.001")


def test_ewma_floor_cap_and_too_little_history() -> None:
    assert ewma_volatility(series(0.0, 60), 600, D("0.3"), D(3)) == D("0.3")
    assert ewma_volatility(series(0.01, 60), 600, D("0.3"), D(3)) == D(3)
    assert ewma_volatility(series(0.0001, 5), 600, D("0.3"), D(3)) is None


def test_ewma_skips_bad_prices_and_duplicate_times() -> None:
    good = series(0.0001, 30)
    noisy = [*good[:10], (good[10][0], D(0)), (good[10][0], D("NaN")), good[10], *good[10:]]
    assert ewma_volatility(noisy, 600, D("0.01"), D(10)) == ewma_volatility(good, 600, D("0.01"), D(10))


def test_ewma_weights_recent_returns_more() -> None:
    calm_then_wild = series(0.00005, 100) + [
        (NOW + timedelta(seconds=100 + i), D(str(100 * math.exp(0.00005 * 99) * math.exp(0.0005 * i))))
        for i in range(1, 30)
    ]
    recent = ewma_volatility(calm_then_wild, 10, D("0.01"), D(100))
    slow = ewma_volatility(calm_then_wild, 100000, D("0.01"), D(100))
    assert recent is not None and slow is not None and recent > slow
