"""Typed tables. Every trade outcome, decision and alert lands here; no secret ever does.

`paper_trades` and `live_trades` share one column set (`_TradeColumns`), so the paper and live
paths write the same shape and the operator's habitual query
`SELECT market_id, outcome, entry_price, quantity, status, created_at FROM paper_trades`
works through the generated columns `entry_price` and `quantity`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Computed,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MONEY = Numeric(20, 8)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on PostgreSQL and SQLite alike (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), Decimal: MONEY}


class MarketRow(Base):
    __tablename__ = "markets"

    market_id: Mapped[str] = mapped_column(String(80), primary_key=True)  # condition id
    gamma_id: Mapped[str] = mapped_column(String(40), default="")
    slug: Mapped[str] = mapped_column(String(200), default="")
    question: Mapped[str] = mapped_column(Text, default="")
    symbol: Mapped[str | None] = mapped_column(String(10), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    strike: Mapped[Decimal | None]
    window_start: Mapped[datetime | None]
    resolves_at: Mapped[datetime | None]
    yes_token_id: Mapped[str] = mapped_column(String(100), default="")
    no_token_id: Mapped[str] = mapped_column(String(100), default="")
    outcome_yes: Mapped[str] = mapped_column(String(40), default="Yes")
    outcome_no: Mapped[str] = mapped_column(String(40), default="No")
    tick_size: Mapped[Decimal]
    min_order_size: Mapped[Decimal]
    neg_risk: Mapped[bool] = mapped_column(Boolean, default=False)
    fees_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    fee_rate: Mapped[Decimal | None]
    fee_exponent: Mapped[Decimal | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    accepting_orders: Mapped[bool] = mapped_column(Boolean, default=True)
    winning_outcome: Mapped[str | None] = mapped_column(String(3))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OpportunityRow(Base):
    """Every opportunity the scanner looked at, emitted or filtered, with the reason."""

    __tablename__ = "opportunities"

    opportunity_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    market_id: Mapped[str] = mapped_column(String(80), index=True)
    symbol: Mapped[str | None] = mapped_column(String(10))
    outcome: Mapped[str | None] = mapped_column(String(3))
    fair_value: Mapped[Decimal | None]
    ask: Mapped[Decimal | None]
    fee: Mapped[Decimal | None]
    net_edge: Mapped[Decimal | None]
    emitted: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(String(60), default="")
    request_id: Mapped[str | None] = mapped_column(String(40))
    observed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RiskDecisionRow(Base):
    """Every decision of the guardian. Each review reads the market's last approval (its cooldown),
    an index lookup however many decisions the market collects."""

    __tablename__ = "risk_decisions"
    __table_args__ = (Index("ix_risk_decisions_last_approval", "mode", "market_id", "approved", "decided_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40), unique=True)
    market_id: Mapped[str] = mapped_column(String(80), index=True)
    approved: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(200), default="")
    requested_amount: Mapped[Decimal]
    approved_amount: Mapped[Decimal]
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    mode: Mapped[str] = mapped_column(String(5), default="paper")
    outcome: Mapped[str | None] = mapped_column(String(3))
    # Set once by the guardian's settle: what the execution outcome left reserved (the filled cost).
    settled_status: Mapped[str | None] = mapped_column(String(10))
    kept_amount: Mapped[Decimal | None]
    settled_at: Mapped[datetime | None]


class RiskExposureRow(Base):
    """Running USD exposure (reservations + filled cost) per (mode, market); market "*" is the total.

    Every review and settle locks the mode's total row first (an UPDATE of it, risk/book.py), so
    any number of risk workers decide one after another against the same numbers (invariant 4).
    """

    __tablename__ = "risk_exposure"

    mode: Mapped[str] = mapped_column(String(5), primary_key=True)
    market_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    amount: Mapped[Decimal] = mapped_column(default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OrderClaimRow(Base):
    """The executor's durable claim on a request id, taken before any venue call (invariant 1).

    In live mode the signed order's hash is written here before the post, so a redelivered
    request can ask the venue about that hash instead of posting again.
    """

    __tablename__ = "order_claims"

    request_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    trade_id: Mapped[str] = mapped_column(String(50), unique=True)
    mode: Mapped[str] = mapped_column(String(5))
    order_hash: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(10), default="claimed")
    result: Mapped[dict | None] = mapped_column(JSON)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class _TradeColumns:
    """Columns shared by `paper_trades` and `live_trades` (the original plan's `live_trades`)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trade_id: Mapped[str] = mapped_column(String(50), unique=True)
    request_id: Mapped[str] = mapped_column(String(40), index=True)
    opportunity_id: Mapped[str] = mapped_column(String(40), default="")
    market_id: Mapped[str] = mapped_column(String(80), index=True)
    token_id: Mapped[str] = mapped_column(String(100))
    side: Mapped[str] = mapped_column(String(4))
    outcome: Mapped[str] = mapped_column(String(3))
    requested_amount: Mapped[Decimal]
    max_price: Mapped[Decimal]
    expected_edge: Mapped[Decimal | None]
    expected_fee: Mapped[Decimal | None]
    filled_amount: Mapped[Decimal] = mapped_column(default=Decimal(0))
    fill_price: Mapped[Decimal | None]
    fee: Mapped[Decimal] = mapped_column(default=Decimal(0))
    order_id: Mapped[str | None] = mapped_column(String(100))
    order_hash: Mapped[str | None] = mapped_column(String(80))
    venue_trade_ids: Mapped[list | None] = mapped_column(JSON)
    # Live only: on-chain settlement of the order's trades (matched|confirmed|failed), followed by
    # reconciliation until it is final.
    settlement: Mapped[str | None] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(String(10), index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    filled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    strategy: Mapped[str] = mapped_column(String(30), default="oracle_lag")
    entry_price: Mapped[Decimal | None] = mapped_column(MONEY, Computed("fill_price", persisted=True))
    quantity: Mapped[Decimal | None] = mapped_column(MONEY, Computed("filled_amount", persisted=True))
    # Price paid against the limit (negative: better than the limit).
    slippage: Mapped[Decimal | None] = mapped_column(MONEY, Computed("fill_price - max_price", persisted=True))


class PaperTradeRow(_TradeColumns, Base):
    __tablename__ = "paper_trades"


class LiveTradeRow(_TradeColumns, Base):
    __tablename__ = "live_trades"


class PositionRow(Base):
    """Net holdings per (mode, market, outcome), built from fills; settled at resolution."""

    __tablename__ = "positions"
    __table_args__ = (
        UniqueConstraint("mode", "market_id", "outcome"),
        Index("ix_positions_mode_settled_at", "mode", "settled_at"),  # the review's "realized today"
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mode: Mapped[str] = mapped_column(String(5))
    market_id: Mapped[str] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(3))
    token_id: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[Decimal] = mapped_column(default=Decimal(0))
    cost: Mapped[Decimal] = mapped_column(default=Decimal(0))
    fees: Mapped[Decimal] = mapped_column(default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0))
    status: Mapped[str] = mapped_column(String(10), default="open")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertRow(Base):
    """Every alert raised, with what happened to its delivery."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(60), unique=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str] = mapped_column(String(250))
    message: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(120), index=True)
    delivery: Mapped[str] = mapped_column(String(12), default="pending")  # sent|logged|failed|collapsed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None]


class SystemStateRow(Base):
    """Durable operator flags; the halt flag lives here so a Redis restart cannot clear it."""

    __tablename__ = "system_state"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class EquitySnapshotRow(Base):
    """Equity over time (bankroll + realized + unrealized P&L): peak for drawdown, curve for reports.

    Written every 30 s and read by every risk review (latest, day's opening and peak per mode), so
    both reads are index lookups however long the history grows."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (
        Index("ix_equity_snapshots_mode_taken_at", "mode", "taken_at"),
        Index("ix_equity_snapshots_mode_equity", "mode", "equity"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mode: Mapped[str] = mapped_column(String(5))
    equity: Mapped[Decimal]
    realized_pnl: Mapped[Decimal]
    unrealized_pnl: Mapped[Decimal]
    taken_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
