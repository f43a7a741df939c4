"""Fair probability of YES from the spot price (DESIGN.md §3), as pure functions of time passed in.

P(YES) = Φ(d₂), d₂ = (ln(S/K) - sigma²τ/2) / (sigma√τ), sigma annualised, τ in years. Strike markets use
their strike; Up/Down windows use the oracle price stored at the window start and are not priced
before the window opens or while that price is unknown. The transcendental functions go through
float (relative error ~1e-16, far below a price tick); inputs and results are Decimal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from pm_arb_tasks.domain.edge import Reason
from pm_arb_tasks.domain.models import Market, MarketKind

SECONDS_PER_YEAR = 365 * 24 * 3600  # crypto trades every day of the year
MIN_RETURNS = 10  # fewer stored returns than this is no volatility estimate at all
ONE = Decimal(1)
ZERO = Decimal(0)


class Unpriceable(Exception):
    """The market cannot be priced now; `reason` is what the opportunity log records."""

    def __init__(self, reason: Reason):
        super().__init__(reason)
        self.reason = reason


def years_between(start: datetime, end: datetime) -> Decimal:
    """tau: the time from `start` to `end` in years (negative when `end` is past)."""
    return Decimal(str((end - start).total_seconds())) / SECONDS_PER_YEAR


SQRT2 = math.sqrt(2.0)


def phi_d2_many(spot: float, strikes: Sequence[float], sigma: float, tau: float) -> list[float]:
    """Phi(d2) in float for many strikes sharing one (sigma, tau): the scanner's hot path prices
    every market resolving at the same moment in one list comprehension, with sigma²tau/2 and
    sigma√tau computed once. Callers have checked spot, strikes > 0."""
    if tau <= 0 or sigma <= 0:
        return [1.0 if spot > strike else 0.0 for strike in strikes]
    log, erf = math.log, math.erf
    drift, scale = sigma * sigma * tau / 2, sigma * math.sqrt(tau)
    return [0.5 * (1.0 + erf(((log(spot / strike) - drift) / scale) / SQRT2)) for strike in strikes]


def phi_d2(spot: float, strike: float, sigma: float, tau: float) -> float:
    """Phi(d2) in float for one market, through the scanner's arithmetic, so both give
    bit-identical probabilities; callers have checked spot, strike > 0."""
    return phi_d2_many(spot, (strike,), sigma, tau)[0]


def prob_above(spot: Decimal, strike: Decimal, sigma: Decimal, tau: Decimal) -> Decimal:
    """Phi(d2): the risk-neutral probability that the price ends above `strike` after `tau` years."""
    if spot <= 0 or strike <= 0:
        raise Unpriceable(Reason.STALE)
    return Decimal(repr(phi_d2(float(spot), float(strike), float(sigma), float(tau))))


def fixed_strike(market: Market) -> Decimal | None:
    """The K of a market whose strike does not depend on the clock (a strike market's own), None
    for an Up/Down window (see `strike_of`), Unpriceable(UNCLASSIFIED) for any shape without one.

    The scanner settles this once per discovered market instead of once per tick.
    """
    if market.kind is MarketKind.UPDOWN and market.window_start is not None:
        return None
    if market.kind is MarketKind.STRIKE and market.strike is not None and market.strike > 0:
        return market.strike
    raise Unpriceable(Reason.UNCLASSIFIED)


def strike_of(market: Market, now: datetime, window_open_price: Decimal | None) -> Decimal:
    """The K of Phi(d2) for `market`, or Unpriceable with the reason it has none (yet)."""
    fixed = fixed_strike(market)
    if fixed is not None:
        return fixed
    start = market.window_start
    assert start is not None  # fixed_strike returns None for Up/Down windows with a start only
    if now < start:
        raise Unpriceable(Reason.WINDOW_NOT_OPEN)
    return window_strike(market, window_open_price)


def window_strike(market: Market, window_open_price: Decimal | None) -> Decimal:
    """The K of an open Up/Down window: the strike Gamma stated, else the oracle price at its start."""
    strike = market.strike or window_open_price
    if strike is None or strike <= 0:
        raise Unpriceable(Reason.NO_STRIKE)
    return strike


def fair_yes_float(
    market: Market, spot: float, sigma: float, now: datetime, window_open_price: Decimal | None = None
) -> float:
    """Fair probability of the first outcome (Yes / Up) as a float: the scanner screens with it."""
    strike = strike_of(market, now, window_open_price)
    if market.resolves_at is None:
        raise Unpriceable(Reason.UNCLASSIFIED)
    seconds = (market.resolves_at - now).total_seconds()
    if seconds <= 0:
        raise Unpriceable(Reason.CLOSED)
    if spot <= 0:
        raise Unpriceable(Reason.STALE)
    return phi_d2(spot, float(strike), sigma, seconds / SECONDS_PER_YEAR)


def fair_yes(
    market: Market, spot: Decimal, sigma: Decimal, now: datetime, window_open_price: Decimal | None = None
) -> Decimal:
    """Fair probability of the market's first outcome (Yes / Up) at `now`."""
    return Decimal(repr(fair_yes_float(market, float(spot), float(sigma), now, window_open_price)))


def ewma_volatility(
    prices: Sequence[tuple[datetime, Decimal]], halflife_seconds: float, floor: Decimal, cap: Decimal
) -> Decimal | None:
    """Annualised sigma from an EWMA of per-second variance of log returns, clamped to [floor, cap].

    Oracle ticks arrive irregularly, so each return is scaled by its own interval and weighted by
    a time-based decay (half-life in seconds). None when there are too few returns to estimate.
    """
    decay = math.log(2) / halflife_seconds
    variance: float | None = None
    returns = 0
    previous: tuple[float, float] | None = None
    for when, price in prices:
        t, p = when.timestamp(), float(price)
        if p <= 0 or not math.isfinite(p):
            continue
        if previous is not None and t > previous[0]:
            dt = t - previous[0]
            sample = math.log(p / previous[1]) ** 2 / dt
            variance = sample if variance is None else variance + (1 - math.exp(-decay * dt)) * (sample - variance)
            returns += 1
        if previous is None or t > previous[0]:
            previous = (t, p)
    if variance is None or returns < MIN_RETURNS:
        return None
    sigma = Decimal(str(math.sqrt(variance * SECONDS_PER_YEAR)))
    return min(max(sigma, floor), cap)
