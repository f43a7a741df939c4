"""Walking the asks: budget, limit, FOK/FAK, fees."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from pm_arb_tasks.domain.fills import walk_asks
from pm_arb_tasks.domain.models import BookLevel, FeeSchedule, OrderType

ASKS = (
    BookLevel(price=D("0.52"), size=D("10")),
    BookLevel(price=D("0.50"), size=D("10")),
    BookLevel(price=D("0.60"), size=D("100")),
)


def test_walks_best_first_up_to_the_limit_and_computes_vwap() -> None:
    fill = walk_asks(ASKS, D("0.55"), D("10.20"), OrderType.FAK, None)
    assert fill.shares == D("20") and fill.cost == D("10.20") and fill.complete
    assert fill.vwap == D("0.51")


def test_fok_with_too_little_liquidity_under_the_limit_fills_nothing() -> None:
    fill = walk_asks(ASKS, D("0.55"), D("15"), OrderType.FOK, None)
    assert fill.shares == 0 and not fill.complete


def test_fak_takes_what_is_there() -> None:
    fill = walk_asks(ASKS, D("0.55"), D("15"), OrderType.FAK, None)
    assert fill.shares == D("20") and not fill.complete


def test_fee_is_charged_per_share_at_each_level() -> None:
    fill = walk_asks(ASKS, D("0.50"), D("5"), OrderType.FOK, FeeSchedule(rate=D("0.07"), exponent=D(1)))
    assert fill.shares == D("10")
    assert fill.fee == D("10") * D("0.07") * D("0.25")


levels = st.lists(
    st.builds(
        BookLevel,
        price=st.decimals(min_value=D("0.01"), max_value=D("0.99"), places=2),
        size=st.decimals(min_value=D("0.01"), max_value=D("1000"), places=2),
    ),
    max_size=8,
)


@given(
    levels,
    st.decimals(min_value=D("0.01"), max_value=D("0.99"), places=2),
    st.decimals(min_value=D("1"), max_value=D("50"), places=2),
    st.sampled_from(list(OrderType)),
)
def test_never_overspends_nor_pays_above_the_limit(asks, limit, budget, order_type) -> None:
    fill = walk_asks(tuple(asks), limit, budget, order_type, None)
    assert fill.cost <= budget
    if fill.shares:
        assert fill.vwap <= limit
    if order_type is OrderType.FOK:
        assert fill.complete or fill.shares == 0
