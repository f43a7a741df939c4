"""Translating the CLOB's order and trade payloads into our types (pure: no I/O).

Shared by the live venue (its post replies and lookups) and reconciliation, so a fill is read
the same way whether it came back from `POST /order` or was found later in `/data/trades`.
Prices and sizes arrive as decimal strings (or junk); they become `Decimal` here or nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from pm_arb_tasks.domain.fees import taker_fee_per_share
from pm_arb_tasks.domain.models import FeeSchedule, TradeStatus

ZERO = Decimal(0)
CENT = Decimal("0.01")
STORED = Decimal("0.00000001")  # the trade tables' precision: results carry exactly what is stored
SANE_DIGITS = 15  # no price, size, amount or timestamp the venue sends has more integer digits

# Final trade statuses as the CLOB reports them (MATCHED, MINED, RETRYING: still settling).
CONFIRMED = "CONFIRMED"
FAILED_TRADE = "FAILED"


class Settlement:
    """Where the on-chain settlement of an order's trades stands (the trade tables' `settlement`)."""

    PENDING = "matched"
    CONFIRMED = "confirmed"
    FAILED = "failed"


def parse_decimal(value: Any, digits: int | None = SANE_DIGITS) -> Decimal | None:
    """A finite Decimal from a venue field ("0.52", 0.52, 52), or None for anything else,
    including numbers with more than `digits` integer digits (allowances, often MAX_UINT256, pass None)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or (digits is not None and number and number.adjusted() >= digits):
        return None
    return number


@dataclass(frozen=True)
class MarketRules:
    """What the venue enforces on an order for one token, from its `GET /book` answer."""

    tick_size: Decimal
    min_order_size: Decimal
    neg_risk: bool


def rules_from_book(book: Any) -> MarketRules | None:
    if not isinstance(book, dict):
        return None
    tick = parse_decimal(book.get("tick_size"))
    min_size = parse_decimal(book.get("min_order_size"))
    if tick is None or not ZERO < tick < 1 or min_size is None or min_size < 0:
        return None
    neg_risk = book.get("neg_risk")
    return MarketRules(tick.normalize(), min_size, neg_risk is True or str(neg_risk).lower() == "true")


def stored(value: Decimal) -> Decimal:
    """Rounded as the database keeps it, so re-recording an outcome moves no position by dust."""
    return value.quantize(STORED)


def price_on_tick(limit_price: Decimal, tick_size: Decimal) -> Decimal:
    """Round down: a buy never pays above the limit the edge calculation allowed."""
    return (limit_price / tick_size).to_integral_value(rounding=ROUND_DOWN) * tick_size


def spend_for(amount: Decimal) -> Decimal:
    """USD amounts of marketable buys carry at most two decimals at the CLOB."""
    return amount.quantize(CENT, rounding=ROUND_DOWN)


@dataclass(frozen=True)
class VenueFill:
    """What the venue's trades say was bought for one order."""

    shares: Decimal = ZERO
    cost: Decimal = ZERO  # USD, fee excluded
    fee: Decimal = ZERO
    trade_ids: tuple[str, ...] = ()
    settlement: str | None = None  # None: no trade seen

    @property
    def vwap(self) -> Decimal | None:
        return stored(self.cost / self.shares) if self.shares else None


def _own_legs(trade: dict, order_hash: str) -> tuple[list[tuple[Decimal, Decimal]], bool]:
    """(price, shares) legs of `trade` that belong to our order, and whether we were the taker."""
    makers = trade.get("maker_orders") if isinstance(trade.get("maker_orders"), list) else []
    if str(trade.get("taker_order_id", "")).lower() == order_hash.lower():
        legs = [
            (parse_decimal(m.get("price")), parse_decimal(m.get("matched_amount")))
            for m in makers
            if isinstance(m, dict)
        ]
        if not legs:  # no maker detail: the trade's own size at its price
            legs = [(parse_decimal(trade.get("price")), parse_decimal(trade.get("size")))]
        return [(p, s) for p, s in legs if _sane_leg(p, s)], True
    legs = [
        (parse_decimal(m.get("price")), parse_decimal(m.get("matched_amount")))
        for m in makers
        if isinstance(m, dict) and str(m.get("order_id", "")).lower() == order_hash.lower()
    ]
    return [(p, s) for p, s in legs if _sane_leg(p, s)], False


def _sane_leg(price: Decimal | None, shares: Decimal | None) -> bool:
    """A binary outcome trades strictly between 0 and 1; a leg outside that is a garbled reply."""
    return price is not None and ZERO < price < 1 and shares is not None and shares > 0


def fill_from_trades(trades: list[Any], order_hash: str, schedule: FeeSchedule | None) -> VenueFill:
    """Sum the legs of our order over its trades; trades that failed on chain bought nothing."""
    shares, cost, fee, ids, states = ZERO, ZERO, ZERO, [], []
    for trade in trades:
        if not isinstance(trade, dict):
            continue
        legs, taker = _own_legs(trade, order_hash)
        if not legs:
            continue
        ids.append(str(trade.get("id", "")))
        state = str(trade.get("status", "")).upper()
        states.append(state)
        if state == FAILED_TRADE:
            continue
        for price, size in legs:
            shares += size
            cost += size * price
            if taker:
                fee += size * taker_fee_per_share(price, schedule)
    return VenueFill(shares, cost, stored(fee), tuple(i for i in ids if i), _settlement(states))


def _settlement(states: list[str]) -> str | None:
    if not states:
        return None
    if all(s == FAILED_TRADE for s in states):
        return Settlement.FAILED
    if all(s in (CONFIRMED, FAILED_TRADE) for s in states):
        return Settlement.CONFIRMED
    return Settlement.PENDING


def fill_status(shares: Decimal, cost: Decimal, spend: Decimal) -> TradeStatus:
    """Filled when the whole USD amount found liquidity (to the cent), partial otherwise."""
    if shares <= 0:
        return TradeStatus.FAILED
    return TradeStatus.FILLED if cost >= spend - CENT else TradeStatus.PARTIAL


@dataclass(frozen=True)
class Verdict:
    status: TradeStatus
    message: str


# Error texts the CLOB answers with, in lower case, and what they mean for us.
_NO_MATCH = ("fully filled or killed", "no orders found to match", "no match")
_BALANCE = "not enough balance"
_TICK = "tick size"
_VERSION = "order_version_mismatch"


def error_message(body: Any, fallback: str) -> str:
    if isinstance(body, dict):
        for key in ("error", "errorMsg", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return fallback


def is_balance_error(message: str) -> bool:
    return _BALANCE in message.lower()


def is_tick_error(message: str) -> bool:
    return _TICK in message.lower()


def is_version_error(message: str) -> bool:
    return _VERSION in message.lower()


def verdict_for_error(http_status: int, message: str) -> Verdict:
    """A refused post: nothing was placed, except on 5xx where the venue may have it anyway."""
    lowered = message.lower()
    if http_status >= 500:
        return Verdict(TradeStatus.UNKNOWN, f"venue error HTTP {http_status}: {message}; reconciliation decides")
    if http_status == 429:
        return Verdict(TradeStatus.FAILED, f"rate limited by the venue (HTTP 429), not placed: {message}")
    if http_status == 401:
        return Verdict(TradeStatus.REJECTED, f"credentials rejected by the venue (HTTP 401): {message}")
    if _BALANCE in lowered or any(text in lowered for text in _NO_MATCH):
        return Verdict(TradeStatus.FAILED, f"venue: {message}")
    return Verdict(TradeStatus.REJECTED, f"venue refused the order (HTTP {http_status}): {message}")
