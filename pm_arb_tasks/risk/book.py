"""The risk book in the database: exposure per market, its total, and the numbers the rules need.

Why a database row lock and not a Redis script: the reservation, the recorded decision and the
idempotency check must commit together (a crash between a Redis reservation and the decision
row would leak or double-count exposure), and the book must survive a Redis restart, like the
halt flag. Every writer locks the mode's total row first (`lock_total`), so decisions and
settlements for a mode are serialised across any number of worker processes and hosts.

The locked transaction is kept short, because every other risk worker waits on it: one UPDATE
takes the lock and returns the total, one SELECT reads everything else the rules need, one
upsert moves the market and the total together. The statements are built once, here.

Why the lock and the read are two statements: under READ COMMITTED (PostgreSQL's default) a
statement sees the database as of its own start. A statement that waited for the lock would
still read what was there before the lock holder committed; the SELECT after it starts later,
so it sees every decision and settlement that held the lock before us.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, ScalarSelect, String, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import (
    MONEY,
    EquitySnapshotRow,
    PositionRow,
    RiskDecisionRow,
    RiskExposureRow,
    SystemStateRow,
    UTCDateTime,
)
from pm_arb_tasks.db.session import dialect_insert
from pm_arb_tasks.domain.models import ZERO
from pm_arb_tasks.domain.risk_rules import RiskState
from pm_arb_tasks.state.halt import HALT_KEY, halt_from

TOTAL = "*"
DIALECTS = ("postgresql", "sqlite")

_exposure = RiskExposureRow.__table__
_positions = PositionRow.__table__
_snapshots = EquitySnapshotRow.__table__
_decisions = RiskDecisionRow.__table__
_state = SystemStateRow.__table__

# Parameter names differ from the column names (insert() and update() reserve those); typed, so
# every place a parameter appears binds it alike (UTC times, Decimal money).
_MODE = bindparam("book_mode", type_=String())
_MARKET = bindparam("book_market", type_=String())
_REQUEST = bindparam("book_request", type_=String())
_NOW = bindparam("book_now", type_=UTCDateTime())
_DAY_START = bindparam("book_day_start", type_=UTCDateTime())
_DELTA = bindparam("book_delta", type_=MONEY)

_LOCK = (
    update(_exposure)
    .where(_exposure.c.mode == _MODE, _exposure.c.market_id == TOTAL)
    .values(updated_at=_NOW)
    .returning(_exposure.c.amount)
)
_CREATE_TOTAL = {
    dialect: dialect_insert(dialect)(_exposure)
    .values(mode=_MODE, market_id=TOTAL, amount=ZERO, updated_at=_NOW)
    .on_conflict_do_nothing()
    for dialect in DIALECTS
}


# Market and total by the same delta in one statement, the market row created on first use. Text,
# because SQLAlchemy cannot cache a multi-row VALUES insert: built as an expression it is compiled
# again on every review and settle (~0.6 ms each); this SQL is the same for both dialects.
_MOVE = text(
    f"INSERT INTO {_exposure.name} (mode, market_id, amount, updated_at)"
    " VALUES (:book_mode, :book_market, :book_delta, :book_now), (:book_mode, :book_total, :book_delta, :book_now)"
    " ON CONFLICT (mode, market_id) DO UPDATE"
    f" SET amount = {_exposure.name}.amount + excluded.amount, updated_at = excluded.updated_at"
).bindparams(_MODE, _MARKET, _DELTA, _NOW, bindparam("book_total", TOTAL, type_=String()))


def _realized(*since: ColumnElement[bool]) -> ScalarSelect[Any]:
    return (
        select(func.coalesce(func.sum(_positions.c.realized_pnl), 0))
        .where(_positions.c.mode == _MODE, *since)
        .scalar_subquery()
    )


def _equity(*before: ColumnElement[bool]) -> ScalarSelect[Any]:
    return (
        select(_snapshots.c.equity)
        .where(_snapshots.c.mode == _MODE, *before)
        .order_by(_snapshots.c.taken_at.desc(), _snapshots.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


_READ = select(
    select(_decisions.c.id).where(_decisions.c.request_id == _REQUEST).scalar_subquery().label("earlier"),
    select(_state.c.value).where(_state.c.key == HALT_KEY).scalar_subquery().label("halt"),
    _realized().label("realized"),
    _realized(_positions.c.settled_at >= _DAY_START).label("realized_today"),
    _equity().label("latest"),
    _equity(_snapshots.c.taken_at < _DAY_START).label("opening"),
    select(func.max(_snapshots.c.equity)).where(_snapshots.c.mode == _MODE).scalar_subquery().label("best"),
    select(func.max(_decisions.c.decided_at))
    .where(_decisions.c.mode == _MODE, _decisions.c.market_id == _MARKET, _decisions.c.approved.is_(True))
    .scalar_subquery()
    .label("last_approval"),
    select(_exposure.c.amount)
    .where(_exposure.c.mode == _MODE, _exposure.c.market_id == _MARKET)
    .scalar_subquery()
    .label("market_exposure"),
)


class Reading(NamedTuple):
    """What one read of the book found: the request's earlier decision (its id), or the state."""

    earlier_decision: int | None
    state: RiskState


def lock_total(session: Session, mode: str, now: datetime) -> Decimal:
    """Take the mode's exclusive lock for the rest of the transaction; returns the total exposure.

    The total row is created on first use (and again if someone deleted it), never assumed.
    """
    # SQLite has no row locks: take the database write lock up front instead of on first write.
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite" and not session.connection().connection.driver_connection.in_transaction:
        session.execute(text("BEGIN IMMEDIATE"))
    params = {"book_mode": mode, "book_now": now}
    total = session.execute(_LOCK, params).scalar()
    if total is None:
        session.execute(_CREATE_TOTAL[dialect], params)
        total = session.execute(_LOCK, params).scalar_one()
    return total


def add_exposure(session: Session, mode: str, market_id: str, delta: Decimal, now: datetime) -> None:
    """Move the market's and the total's exposure by `delta` (negative = release). Call under the lock."""
    params = {"book_mode": mode, "book_market": market_id, "book_delta": delta, "book_now": now}
    session.execute(_MOVE, params)


def read_state(
    session: Session, mode: str, market_id: str, request_id: str, bankroll: Decimal, total: Decimal, now: datetime
) -> Reading:
    """Everything `risk_rules.evaluate` needs, in one statement after `lock_total` (see the module
    docstring); `total` is what the lock returned."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    params = {"book_mode": mode, "book_market": market_id, "book_request": request_id, "book_day_start": day_start}
    row = session.execute(_READ, params).one()
    halt = halt_from(row.halt)
    equity = row.latest if row.latest is not None else bankroll + row.realized
    peak = max(bankroll, equity, row.best or ZERO)
    # Daily P&L: realized today, or the equity change since the day began when snapshots say worse.
    daily_pnl = row.realized_today
    if row.opening is not None and row.latest is not None:
        daily_pnl = min(daily_pnl, row.latest - row.opening)
    state = RiskState(
        halted=halt.halted,
        halt_reason=halt.reason,
        market_exposure=row.market_exposure if row.market_exposure is not None else ZERO,
        total_exposure=total,
        daily_pnl=daily_pnl,
        equity=equity,
        peak_equity=peak,
        last_approval_at=row.last_approval,
    )
    return Reading(row.earlier, state)

