"""Net edge, limit price and order size (DESIGN.md §3): pure, Decimal, no I/O.

Buying an outcome with fair probability q at price a earns (q - a) - fee(a) per share. The limit
price is the highest tick at which that is still at least the threshold, so the order can never
fill at a price where the trade stops being worth it; the size is the smallest of every cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Literal, NamedTuple

from pm_arb_tasks.domain.fees import taker_fee_per_share
from pm_arb_tasks.domain.models import BookLevel, FeeSchedule, Outcome

ZERO = Decimal(0)
ONE = Decimal(1)
CENT = Decimal("0.01")
SizingStrategy = Literal["fixed", "kelly", "half_kelly"]
KELLY_MULTIPLIER: dict[str, Decimal] = {"kelly": ONE, "half_kelly": Decimal("0.5")}


class Reason(StrEnum):
    """Why an opportunity was emitted or skipped; the opportunity log's `reason` column."""

    EMITTED = "emitted"
    NO_EDGE = "no edge"  # ask at or above fair: counted, not logged
    BELOW_THRESHOLD = "below threshold"
    FEE = "below threshold after fee"
    SIZE = "size"
    COOLDOWN = "cooldown"
    STALE = "stale data"
    UNCLASSIFIED = "unclassified market"
    NO_STRIKE = "no strike price yet"
    WINDOW_NOT_OPEN = "window not open"
    CLOSED = "market closed"
    NO_VOLATILITY = "no volatility yet"
    DISPATCH_FAILED = "dispatch failed"


def gross_edge(prob: Decimal, price: Decimal) -> Decimal:
    return prob - price


def net_edge(prob: Decimal, price: Decimal, schedule: FeeSchedule | None) -> Decimal:
    """Edge per share after the taker fee at `price`; never above the gross edge (fees are >= 0)."""
    return prob - price - taker_fee_per_share(price, schedule)


def floor_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(rounding=ROUND_DOWN) * tick


def limit_price(prob: Decimal, schedule: FeeSchedule | None, min_edge: Decimal, tick: Decimal) -> Decimal | None:
    """The highest tick price whose net edge still clears `min_edge`, or None when no price does.

    The search walks down from fair - threshold (fees only lower the edge, so nothing above it can
    clear); with the fee bounded by rate/4 that is a handful of ticks.
    """
    price = min(floor_to_tick(prob - min_edge, tick), ONE - tick)
    while price >= tick:
        if net_edge(prob, price, schedule) >= min_edge:
            return price
        price -= tick
    return None


class Depth(NamedTuple):
    shares: Decimal
    usd: Decimal


def depth_at_or_below(asks: Sequence[BookLevel], limit: Decimal) -> Depth:
    """What a buy at `limit` could take from the book (every level, whatever the order)."""
    shares = usd = ZERO
    for level in asks:
        if level.price <= limit and level.size > 0:
            shares += level.size
            usd += level.size * level.price
    return Depth(shares, usd)


def kelly_fraction(prob: Decimal, cost: Decimal) -> Decimal:
    """Kelly stake as a fraction of the bankroll for a binary share costing `cost` that pays 1."""
    if cost <= 0 or cost >= 1 or prob <= cost:
        return ZERO
    return (prob - cost) / (ONE - cost)


class Sizing(NamedTuple):
    """A tuple, like `Evaluation`: the exact path builds one per candidate on every tick."""

    amount: Decimal  # USD to spend, rounded down to the cent; zero when the trade is too small
    min_amount: Decimal  # USD below which the venue would refuse the order
    binding: str  # which cap decided the amount


def size_order(
    *,
    prob: Decimal,
    limit: Decimal,
    asks: Sequence[BookLevel],
    schedule: FeeSchedule | None,
    max_trade: Decimal,
    room: Decimal,
    min_order_size: Decimal,
    strategy: SizingStrategy = "fixed",
    bankroll: Decimal = ZERO,
) -> Sizing:
    """min(MAX_TRADE_SIZE, room under the position limit, depth at or below the limit[, Kelly]).

    `min_order_size` is in shares; buying for at least min_order_size * limit USD at prices up to
    the limit buys at least that many shares, so that is the minimum amount.
    """
    binding, amount = "per-trade cap", max_trade  # the first of the smallest caps binds
    if room < amount:
        binding, amount = "position limit", room
    depth = depth_at_or_below(asks, limit).usd
    if depth < amount:
        binding, amount = "depth", depth
    if strategy in KELLY_MULTIPLIER:
        cost = limit + taker_fee_per_share(limit, schedule)
        kelly = kelly_fraction(prob, cost) * KELLY_MULTIPLIER[strategy] * bankroll
        if kelly < amount:
            binding, amount = strategy, kelly
    amount = max(amount, ZERO).quantize(CENT, rounding=ROUND_DOWN)
    min_amount = max((min_order_size * limit).quantize(CENT, rounding=ROUND_CEILING), CENT)
    if amount < min_amount:
        return Sizing(ZERO, min_amount, binding)
    return Sizing(amount, min_amount, binding)


class Evaluation(NamedTuple):
    """One outcome of one market looked at once: the numbers and the verdict (a tuple: cheap)."""

    outcome: Outcome
    prob: Decimal
    reason: Reason
    ask: Decimal | None = None
    fee: Decimal | None = None
    net_edge: Decimal | None = None
    limit: Decimal | None = None
    sizing: Sizing | None = None


def evaluate_outcome(
    *,
    outcome: Outcome,
    prob: Decimal,
    asks: Sequence[BookLevel],
    schedule: FeeSchedule | None,
    min_edge: Decimal,
    tick: Decimal,
    max_trade: Decimal,
    room: Decimal,
    min_order_size: Decimal,
    strategy: SizingStrategy = "fixed",
    bankroll: Decimal = ZERO,
) -> Evaluation:
    """Buy `outcome` (fair probability `prob`) against its asks? Everything but the cooldown.

    The cheap test comes first: an ask at or above fair - threshold can never clear, whatever the
    fee, so most markets cost two comparisons.
    """
    if not asks:
        return Evaluation(outcome, prob, Reason.NO_EDGE)
    ask = asks[0].price
    gross = prob - ask
    if gross <= 0:
        return Evaluation(outcome, prob, Reason.NO_EDGE, ask=ask)
    if gross < min_edge:
        return Evaluation(outcome, prob, Reason.BELOW_THRESHOLD, ask=ask, net_edge=gross)
    fee = taker_fee_per_share(ask, schedule)
    edge = gross - fee
    if edge < min_edge:
        return Evaluation(outcome, prob, Reason.FEE, ask=ask, fee=fee, net_edge=edge)
    limit = limit_price(prob, schedule, min_edge, tick)
    if limit is None or limit < ask:  # only possible with an exotic schedule: fee falling with price
        return Evaluation(outcome, prob, Reason.FEE, ask=ask, fee=fee, net_edge=edge)
    sizing = size_order(
        prob=prob, limit=limit, asks=asks, schedule=schedule, max_trade=max_trade, room=room,
        min_order_size=min_order_size, strategy=strategy, bankroll=bankroll,
    )
    reason = Reason.EMITTED if sizing.amount > 0 else Reason.SIZE
    return Evaluation(outcome, prob, reason, ask=ask, fee=fee, net_edge=edge, limit=limit, sizing=sizing)
