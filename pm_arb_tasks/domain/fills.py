"""Filling a marketable buy against a book: pure, so the paper executor and its tests share it.

The buyer spends up to `budget` USD on shares priced at or below `limit_price`, walking the asks
best first. FOK fills the whole budget or nothing; FAK fills what is there. Fees are charged on
top of the cost, per share, at each level's price.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from pm_arb_tasks.domain.fees import taker_fee_per_share
from pm_arb_tasks.domain.models import BookLevel, FeeSchedule, OrderType

SHARE_STEP = Decimal("0.01")  # the CLOB's share precision
CENT = Decimal("0.01")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Fill:
    shares: Decimal
    cost: Decimal
    fee: Decimal
    complete: bool  # the whole budget found liquidity at or below the limit

    @property
    def vwap(self) -> Decimal | None:
        return (self.cost / self.shares) if self.shares else None


def walk_asks(
    asks: tuple[BookLevel, ...],
    limit_price: Decimal,
    budget: Decimal,
    order_type: OrderType,
    schedule: FeeSchedule | None,
) -> Fill:
    remaining, shares, cost, fee = budget, ZERO, ZERO, ZERO
    for level in sorted(asks, key=lambda lv: lv.price):
        if level.price > limit_price or remaining < level.price * SHARE_STEP:
            break
        take = min(level.size, (remaining / level.price).quantize(SHARE_STEP, rounding=ROUND_DOWN))
        if take <= 0:
            continue
        shares += take
        cost += take * level.price
        fee += take * taker_fee_per_share(level.price, schedule)
        remaining -= take * level.price
    complete = remaining < CENT
    if order_type is OrderType.FOK and not complete:
        return Fill(ZERO, ZERO, ZERO, False)
    return Fill(shares, cost, fee, complete)
