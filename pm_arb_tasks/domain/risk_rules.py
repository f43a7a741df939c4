"""The risk guardian's rules as pure functions: numbers in, verdict out, time passed in.

The guardian gathers the numbers under a lock and applies `evaluate`; keeping the rules here
means every limit can be tested without a database and read in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING

from pm_arb_tasks.domain.models import ZERO

if TYPE_CHECKING:
    from pm_arb_tasks.settings import Settings

CENT = Decimal("0.01")


@dataclass(frozen=True)
class RiskLimits:
    """Every limit in USD (the settings give most of them as % of the bankroll)."""

    max_trade: Decimal
    position_limit: Decimal
    total_limit: Decimal
    daily_loss_limit: Decimal
    drawdown_limit: Decimal
    cooldown: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskLimits:
        bankroll = settings.initial_bankroll
        return cls(
            max_trade=settings.max_trade_size,
            position_limit=bankroll * settings.position_limit_pct / 100,
            total_limit=bankroll * settings.total_exposure_pct / 100,
            daily_loss_limit=bankroll * settings.daily_loss_limit_pct / 100,
            drawdown_limit=bankroll * settings.drawdown_limit_pct / 100,
            cooldown=timedelta(seconds=settings.market_cooldown_seconds),
        )


@dataclass(frozen=True)
class RiskState:
    """What the book looks like at the moment of the decision."""

    halted: bool = False
    halt_reason: str = ""
    market_exposure: Decimal = ZERO
    total_exposure: Decimal = ZERO
    daily_pnl: Decimal = ZERO
    equity: Decimal = ZERO
    peak_equity: Decimal = ZERO
    last_approval_at: datetime | None = None  # same market


@dataclass(frozen=True)
class Verdict:
    approved: bool
    amount: Decimal
    reason: str
    breach: str | None = None  # "daily_loss" | "drawdown": the caller must halt and alert


def breach(state: RiskState, limits: RiskLimits) -> tuple[str, str] | None:
    """A loss limit that is hit, as (kind, explanation), or None."""
    if -state.daily_pnl >= limits.daily_loss_limit:
        return "daily_loss", f"daily loss {-state.daily_pnl:.2f} reached the limit {limits.daily_loss_limit:.2f}"
    drawdown = state.peak_equity - state.equity
    if drawdown >= limits.drawdown_limit:
        return "drawdown", (
            f"drawdown {drawdown:.2f} from peak {state.peak_equity:.2f} reached the limit {limits.drawdown_limit:.2f}"
        )
    return None


def evaluate(
    amount: Decimal,
    min_amount: Decimal,
    state: RiskState,
    limits: RiskLimits,
    now: datetime,
    deadline: datetime | None = None,
) -> Verdict:
    """Approve `amount`, a smaller amount that fits every limit, or nothing, with the reason.

    A reduced amount is rounded down to the cent and must still reach `min_amount` (the venue's
    minimum order), otherwise the request is rejected by the limit that bound it.
    """
    if state.halted:
        return Verdict(False, ZERO, f"halted: {state.halt_reason}".rstrip(": "))
    if deadline is not None and now >= deadline:
        return Verdict(False, ZERO, "deadline passed")
    hit = breach(state, limits)
    if hit is not None:
        return Verdict(False, ZERO, f"{hit[0]} limit: {hit[1]}", breach=hit[0])
    # Clocks of racing workers differ slightly: an approval stamped just after `now` is recent too.
    if limits.cooldown and state.last_approval_at is not None and now - state.last_approval_at < limits.cooldown:
        return Verdict(False, ZERO, "market cooldown")
    caps = (
        ("requested", amount),
        ("per-trade cap", limits.max_trade),
        ("position limit", limits.position_limit - state.market_exposure),
        ("total exposure limit", limits.total_limit - state.total_exposure),
    )
    binding, allowed = min(caps, key=lambda cap: cap[1])
    allowed = max(allowed, ZERO).quantize(CENT, rounding=ROUND_DOWN)
    floor = max(min_amount, CENT)
    if allowed < floor:
        return Verdict(False, ZERO, f"{binding}: room {allowed} below minimum {floor}")
    if allowed < amount:
        return Verdict(True, allowed, f"reduced to {allowed} by {binding}")
    return Verdict(True, amount, "approved")
