"""Polymarket taker fees: per share, `rate * (p * (1 - p)) ** exponent` (py-clob-client-v2's formula).

A fee-free market pays nothing; a fee-enabled market without a published schedule is charged the
fallback of DESIGN.md §3 (rate 0.0624, exponent 1: 1.56 % at p = 0.50), never zero.
"""

from __future__ import annotations

from decimal import Decimal

from pm_arb_tasks.domain.models import FeeSchedule, Market

FALLBACK_SCHEDULE = FeeSchedule(rate=Decimal("0.0624"), exponent=Decimal(1))
ZERO = Decimal(0)


def schedule_for(market: Market) -> FeeSchedule | None:
    """The schedule that applies to taking liquidity on `market`, or None when fees are off."""
    if not market.fees_enabled:
        return None
    return market.fee_schedule or FALLBACK_SCHEDULE


def taker_fee_per_share(price: Decimal, schedule: FeeSchedule | None) -> Decimal:
    if schedule is None or price <= 0 or price >= 1:
        return ZERO
    base = price * (1 - price)
    if schedule.exponent == 1:
        return schedule.rate * base
    return schedule.rate * Decimal(str(float(base) ** float(schedule.exponent)))
