"""Taker fees: the golden numbers of issue 4 and the schedule each market gets."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from pm_arb_tasks.domain.fees import FALLBACK_SCHEDULE, schedule_for, taker_fee_per_share
from pm_arb_tasks.domain.models import FeeSchedule, Market

PRICES = st.decimals(min_value=D("0.01"), max_value=D("0.99"), places=3)


def test_fallback_fee_at_one_half_is_156_basis_points() -> None:
    assert taker_fee_per_share(D("0.50"), FALLBACK_SCHEDULE) == D("0.0156")


def test_fallback_fee_at_080_is_below_one_cent() -> None:
    fee = taker_fee_per_share(D("0.80"), FALLBACK_SCHEDULE)
    assert fee == D("0.009984") and fee < D("0.01")


def test_five_points_gross_at_one_half_nets_344() -> None:
    assert D("0.05") - taker_fee_per_share(D("0.50"), FALLBACK_SCHEDULE) == D("0.0344")


def test_schedule_follows_the_market() -> None:
    own = FeeSchedule(rate=D("0.07"), exponent=D(1))
    assert schedule_for(Market(market_id="m", fees_enabled=False, fee_schedule=own)) is None
    assert schedule_for(Market(market_id="m", fees_enabled=True, fee_schedule=own)) == own
    assert schedule_for(Market(market_id="m", fees_enabled=True)) == FALLBACK_SCHEDULE


def test_no_schedule_and_degenerate_prices_cost_nothing() -> None:
    assert taker_fee_per_share(D("0.5"), None) == 0
    assert taker_fee_per_share(D("0"), FALLBACK_SCHEDULE) == 0
    assert taker_fee_per_share(D("1"), FALLBACK_SCHEDULE) == 0


def test_non_unit_exponent() -> None:
    schedule = FeeSchedule(rate=D("0.25"), exponent=D(2))
    assert taker_fee_per_share(D("0.5"), schedule) == D("0.015625")


@given(PRICES)
def test_fee_is_symmetric_non_negative_and_bounded_by_rate_over_four(price: D) -> None:
    fee = taker_fee_per_share(price, FALLBACK_SCHEDULE)
    assert 0 <= fee <= FALLBACK_SCHEDULE.rate / 4
    assert fee == taker_fee_per_share(1 - price, FALLBACK_SCHEDULE)
