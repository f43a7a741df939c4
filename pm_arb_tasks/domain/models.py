"""The value types every stage agrees on.

They are pydantic models so that a Celery message is validated where it is decoded: a task
receives `TradeRequest.model_dump(mode="json")` (plain JSON, Decimals as strings, no secrets)
and turns it back into a model with `TradeRequest.model_validate(...)`. Money and prices are
`Decimal` throughout; floats appear only at the venue SDK's edge.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ZERO = Decimal(0)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Outcome(StrEnum):
    """YES is the first outcome of a market ("Yes", "Up"), NO the second ("No", "Down")."""

    YES = "YES"
    NO = "NO"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class MarketKind(StrEnum):
    STRIKE = "strike"  # "Will the price of Bitcoin be above $70,000 on April 20?"
    UPDOWN = "updown"  # "Bitcoin Up or Down - December 31, 12:00PM-12:15PM ET"
    UNCLASSIFIED = "unclassified"


class OrderType(StrEnum):
    FOK = "FOK"  # all or nothing
    FAK = "FAK"  # fill what is there, cancel the rest


class TradeStatus(StrEnum):
    """Every outcome an order request can end in (DESIGN.md invariant 5)."""

    FILLED = "filled"
    PARTIAL = "partial"
    REJECTED = "rejected"  # refused before or by the venue: halt, deadline, risk, venue validation
    FAILED = "failed"  # tried and nothing filled (no liquidity, balance)
    UNKNOWN = "unknown"  # the venue may or may not have it; reconciliation settles it
    PENDING = "pending"  # resting/delayed at the venue; reconciliation follows it


FINAL_STATUSES = frozenset({TradeStatus.FILLED, TradeStatus.REJECTED, TradeStatus.FAILED})


class FeeSchedule(Frozen):
    """Taker fee per share = rate * (p * (1 - p)) ** exponent."""

    rate: Decimal
    exponent: Decimal = Decimal(1)
    taker_only: bool = True


class Market(Frozen):
    """A binary market as the scanner needs it, translated from Gamma at the adapter edge."""

    market_id: str  # the condition id
    gamma_id: str = ""
    slug: str = ""
    question: str = ""
    symbol: str | None = None  # bare: BTC, ETH, SOL, XRP
    kind: MarketKind = MarketKind.UNCLASSIFIED
    strike: Decimal | None = None
    window_start: datetime | None = None  # Up/Down: eventStartTime
    resolves_at: datetime | None = None
    yes_token_id: str = ""
    no_token_id: str = ""
    outcomes: tuple[str, str] = ("Yes", "No")
    tick_size: Decimal = Decimal("0.01")
    min_order_size: Decimal = Decimal(5)
    neg_risk: bool = False
    fees_enabled: bool = False
    fee_schedule: FeeSchedule | None = None
    active: bool = True
    closed: bool = False
    accepting_orders: bool = True
    winning_outcome: Outcome | None = None

    def token_for(self, outcome: Outcome) -> str:
        return self.yes_token_id if outcome is Outcome.YES else self.no_token_id


class Tick(Frozen):
    """One spot observation, bare symbol in and out. It travels in the scan's message, so what
    cannot be a spot price (zero, negative, NaN) or a moment (no time zone) never validates."""

    symbol: str
    price: Decimal = Field(gt=0, allow_inf_nan=False)
    observed_at: AwareDatetime
    provider: str


class BookLevel(Frozen):
    price: Decimal
    size: Decimal  # shares


class Book(Frozen):
    """One side-sorted order book snapshot: bids best (highest) first, asks best (lowest) first."""

    token_id: str
    bids: tuple[BookLevel, ...] = ()
    asks: tuple[BookLevel, ...] = ()
    observed_at: datetime
    tick_size: Decimal | None = None
    min_order_size: Decimal | None = None

    @property
    def best_ask(self) -> BookLevel | None:
        return self.asks[0] if self.asks else None

    @property
    def best_bid(self) -> BookLevel | None:
        return self.bids[0] if self.bids else None


def new_id() -> str:
    return uuid.uuid4().hex


class TradeRequest(Frozen):
    """What the scanner (or `pm-arb trade`) asks the executor to do, deadline included.

    `amount` is USD to spend; `limit_price` is the most the executor may pay per share.
    """

    request_id: str = Field(default_factory=new_id)
    opportunity_id: str = ""
    market_id: str
    token_id: str
    outcome: Outcome
    side: Side = Side.BUY
    amount: Decimal = Field(gt=0)
    min_amount: Decimal = Field(default=ZERO, ge=0)  # below this the venue refuses (min order size)
    limit_price: Decimal = Field(gt=0, lt=1)
    fair_value: Decimal | None = None
    expected_edge: Decimal | None = None
    expected_fee: Decimal | None = None
    order_type: OrderType = OrderType.FOK
    tick_at: datetime
    deadline: datetime
    strategy: str = "oracle_lag"

    @property
    def trade_id(self) -> str:
        """Derived from the request id, so every redelivery upserts the same row."""
        return f"t-{self.request_id}"

    def expired(self, now: datetime) -> bool:
        return now >= self.deadline


class RiskDecision(Frozen):
    """The guardian's verdict on one request; `approved_amount` may be below the asked amount."""

    request: TradeRequest
    approved: bool
    reason: str = ""
    approved_amount: Decimal = ZERO
    decided_at: datetime


class ExecutionResult(Frozen):
    """One order outcome, paper or live, in the same shape so later stages cannot tell them apart."""

    request: TradeRequest
    mode: str  # "paper" | "live"
    status: TradeStatus
    filled_amount: Decimal = ZERO  # shares
    fill_price: Decimal | None = None  # VWAP per share
    fee: Decimal = ZERO  # USD
    order_id: str | None = None
    order_hash: str | None = None
    venue_trade_ids: tuple[str, ...] = ()
    error_message: str | None = None
    executed_at: datetime
    filled_at: datetime | None = None

    @property
    def trade_id(self) -> str:
        return self.request.trade_id

    @property
    def cost(self) -> Decimal:
        """USD spent on the fill, fee excluded."""
        return (self.filled_amount * self.fill_price) if self.fill_price is not None else ZERO
