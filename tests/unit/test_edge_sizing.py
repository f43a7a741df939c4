"""Net edge, limit price and size: the golden cases of issue 4 and the properties that must hold."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from pm_arb_tasks.domain.edge import (
    Reason,
    depth_at_or_below,
    evaluate_outcome,
    kelly_fraction,
    limit_price,
    net_edge,
    size_order,
)
from pm_arb_tasks.domain.fees import FALLBACK_SCHEDULE, schedule_for, taker_fee_per_share
from pm_arb_tasks.domain.models import BookLevel, FeeSchedule, Market, Outcome

MIN_EDGE = D("0.02")
TICK = D("0.01")
BOOK = (BookLevel(price=D("0.55"), size=D(10)), BookLevel(price=D("0.56"), size=D(20)),
        BookLevel(price=D("0.58"), size=D(100)))


def evaluate(prob: D, asks: tuple[BookLevel, ...], schedule: FeeSchedule | None, **overrides: object):
    args = {
        "outcome": Outcome.YES, "prob": prob, "asks": asks, "schedule": schedule, "min_edge": MIN_EDGE,
        "tick": TICK, "max_trade": D(20), "room": D(20), "min_order_size": D(5),
    }
    return evaluate_outcome(**{**args, **overrides})


def test_three_points_on_a_fee_market_are_filtered_the_same_edge_fee_free_trades() -> None:
    asks = (BookLevel(price=D("0.50"), size=D(1000)),)
    fee_market = Market(market_id="f", fees_enabled=True, fee_schedule=FeeSchedule(rate=D("0.07"), exponent=D(1)))
    free_market = Market(market_id="z", fees_enabled=False)
    filtered = evaluate(D("0.53"), asks, schedule_for(fee_market))
    assert filtered.reason is Reason.FEE and filtered.fee == D("0.0175") and filtered.net_edge == D("0.0125")
    traded = evaluate(D("0.53"), asks, schedule_for(free_market))
    assert traded.reason is Reason.EMITTED and traded.net_edge == D("0.03")
    assert traded.limit == D("0.51") and traded.sizing is not None and traded.sizing.amount == D(20)


def test_limit_price_and_size_on_a_sample_book() -> None:
    # fair 0.60 under the fallback fee: at 0.57 net = 0.03 - 0.0624*0.57*0.43 = 0.0147 < 0.02,
    # at 0.56 net = 0.04 - 0.0154 = 0.0246 -> limit 0.56; depth at <= 0.56 = 10*0.55 + 20*0.56 = 16.70 USD
    result = evaluate(D("0.60"), BOOK, FALLBACK_SCHEDULE)
    assert result.reason is Reason.EMITTED
    assert result.limit == D("0.56")
    assert result.sizing is not None
    assert result.sizing.amount == D("16.70") and result.sizing.binding == "depth"
    assert result.sizing.min_amount == D("2.80")  # 5 shares at the limit


def test_fee_free_limit_is_fair_minus_threshold_rounded_down_to_the_tick() -> None:
    assert limit_price(D("0.605"), None, MIN_EDGE, TICK) == D("0.58")
    assert limit_price(D("0.605"), None, MIN_EDGE, D("0.001")) == D("0.585")
    assert limit_price(D("0.02"), None, MIN_EDGE, TICK) is None


def test_size_is_capped_by_room_and_trade_cap_and_respects_the_minimum() -> None:
    deep = (BookLevel(price=D("0.50"), size=D(1000)),)
    capped = size_order(prob=D("0.6"), limit=D("0.55"), asks=deep, schedule=None, max_trade=D(20), room=D("7.5"),
                        min_order_size=D(5))
    assert capped.amount == D("7.50") and capped.binding == "position limit"
    too_small = size_order(prob=D("0.6"), limit=D("0.55"), asks=deep, schedule=None, max_trade=D(20), room=D(2),
                           min_order_size=D(5))
    assert too_small.amount == 0 and too_small.min_amount == D("2.75")


def test_too_small_becomes_a_size_skip() -> None:
    thin = (BookLevel(price=D("0.50"), size=D(2)),)
    assert evaluate(D("0.60"), thin, None).reason is Reason.SIZE


def test_kelly_sizing() -> None:
    # buy at 0.50 fee-free with fair 0.60: f = 0.10 / 0.50 = 0.2 of a 200 bankroll = 40 -> capped at 20
    deep = (BookLevel(price=D("0.50"), size=D(1000)),)
    assert kelly_fraction(D("0.6"), D("0.5")) == D("0.2")
    kelly = size_order(prob=D("0.6"), limit=D("0.5"), asks=deep, schedule=None, max_trade=D(20), room=D(20),
                       min_order_size=D(5), strategy="kelly", bankroll=D(50))
    assert kelly.amount == D("10.00") and kelly.binding == "kelly"
    half = size_order(prob=D("0.6"), limit=D("0.5"), asks=deep, schedule=None, max_trade=D(20), room=D(20),
                      min_order_size=D(5), strategy="half_kelly", bankroll=D(50))
    assert half.amount == D("5.00")
    assert kelly_fraction(D("0.4"), D("0.5")) == 0


def test_reasons_before_the_fee() -> None:
    asks = (BookLevel(price=D("0.50"), size=D(100)),)
    assert evaluate(D("0.49"), asks, None).reason is Reason.NO_EDGE
    assert evaluate(D("0.51"), asks, None).reason is Reason.BELOW_THRESHOLD
    assert evaluate(D("0.51"), (), None).reason is Reason.NO_EDGE


def test_depth_counts_every_level_at_or_below_the_limit_in_any_order() -> None:
    shuffled = (BOOK[2], BOOK[0], BOOK[1])
    assert depth_at_or_below(shuffled, D("0.56")).usd == D("16.70")


# ---- properties ------------------------------------------------------------------------------

probs = st.decimals(min_value=D("0.001"), max_value=D("0.999"), places=4)
prices = st.decimals(min_value=D("0.01"), max_value=D("0.99"), places=2)
schedules = st.one_of(
    st.none(),
    st.builds(
        FeeSchedule,
        rate=st.decimals(min_value=D(0), max_value=D("0.25"), places=4),
        exponent=st.sampled_from([D(1), D(2), D("0.5")]),
    ),
)
edges = st.decimals(min_value=D(0), max_value=D("0.2"), places=3)
ticks = st.sampled_from([D("0.01"), D("0.001")])
amounts = st.decimals(min_value=D(0), max_value=D(100), places=2)
levels = st.lists(
    st.builds(BookLevel, price=prices, size=st.decimals(min_value=D(0), max_value=D(500), places=2)), max_size=6
).map(lambda ls: tuple(sorted(ls, key=lambda level: level.price)))


@given(probs, prices, schedules)
def test_net_edge_never_exceeds_gross_edge(prob: D, price: D, schedule: FeeSchedule | None) -> None:
    assert net_edge(prob, price, schedule) <= prob - price


@given(probs, schedules, edges, ticks)
def test_limit_never_exceeds_fair_minus_fee_minus_threshold(
    prob: D, schedule: FeeSchedule | None, min_edge: D, tick: D
) -> None:
    limit = limit_price(prob, schedule, min_edge, tick)
    if limit is not None:
        assert limit <= prob - taker_fee_per_share(limit, schedule) - min_edge
        assert limit % tick == 0 and 0 < limit < 1
        higher = limit + tick
        assert higher >= 1 or net_edge(prob, higher, schedule) < min_edge


@given(probs, prices, levels, schedules, amounts, amounts, st.sampled_from(["fixed", "kelly", "half_kelly"]),
       amounts)
def test_size_never_exceeds_any_cap(
    prob: D, limit: D, asks: tuple[BookLevel, ...], schedule: FeeSchedule | None, max_trade: D, room: D,
    strategy: str, bankroll: D,
) -> None:
    sizing = size_order(prob=prob, limit=limit, asks=asks, schedule=schedule, max_trade=max_trade, room=room,
                        min_order_size=D(5), strategy=strategy, bankroll=bankroll)  # type: ignore[arg-type]
    assert sizing.amount <= max_trade
    assert sizing.amount <= max(room, D(0))
    assert sizing.amount <= depth_at_or_below(asks, limit).usd
    if strategy != "fixed":
        cost = limit + taker_fee_per_share(limit, schedule)
        assert sizing.amount <= kelly_fraction(prob, cost) * bankroll
    assert sizing.amount == 0 or sizing.amount >= sizing.min_amount
