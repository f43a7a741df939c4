"""The risk book in the database: exposure per market, its total, and the numbers the rules need.

Why a database row lock and not a Redis script: the reservation, the recorded decision and the
idempotency check must commit together (a crash between a Redis reservation and the decision
row would leak or double-count exposure), and the book must survive a Redis restart, like the
halt flag. Every writer locks the mode's total row first (`lock_total`), so decisions and
settlements for a mode are serialised across any number of worker processes and hosts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import EquitySnapshotRow, PositionRow, RiskDecisionRow, RiskExposureRow
from pm_arb_tasks.domain.models import ZERO
from pm_arb_tasks.domain.risk_rules import RiskState
from pm_arb_tasks.state.halt import read_halt

TOTAL = "*"


def lock_total(session: Session, mode: str) -> None:
    """Take the mode's exclusive lock for the rest of the transaction (creating its row once)."""
    # SQLite has no row locks: take the database write lock up front instead of on first write.
    sqlite_db = session.get_bind().dialect.name == "sqlite"
    if sqlite_db and not session.connection().connection.driver_connection.in_transaction:
        session.execute(text("BEGIN IMMEDIATE"))
    _ensure_row(session, mode, TOTAL)
    session.execute(
        select(RiskExposureRow.amount)
        .where(RiskExposureRow.mode == mode, RiskExposureRow.market_id == TOTAL)
        .with_for_update()
    )


def _ensure_row(session: Session, mode: str, market_id: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = {"mode": mode, "market_id": market_id, "amount": ZERO, "updated_at": func.now()}
    session.execute(insert(RiskExposureRow).values(**values).on_conflict_do_nothing())


def exposure(session: Session, mode: str, market_id: str) -> Decimal:
    amount = session.scalar(
        select(RiskExposureRow.amount).where(RiskExposureRow.mode == mode, RiskExposureRow.market_id == market_id)
    )
    return amount if amount is not None else ZERO


def add_exposure(session: Session, mode: str, market_id: str, delta: Decimal, now: datetime) -> None:
    """Move the market's and the total's exposure by `delta` (negative = release). Call under the lock."""
    _ensure_row(session, mode, market_id)
    session.execute(
        update(RiskExposureRow)
        .where(RiskExposureRow.mode == mode, RiskExposureRow.market_id.in_((market_id, TOTAL)))
        .values(amount=RiskExposureRow.amount + delta, updated_at=now)
    )


def read_state(
    session: Session, mode: str, market_id: str, bankroll: Decimal, now: datetime
) -> RiskState:
    """Everything `risk_rules.evaluate` needs, read inside the locked transaction."""
    halt = read_halt(session)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    realized = _realized(session, mode)
    realized_today = _realized(session, mode, since=day_start)
    latest = _snapshot(session, mode, before=None)
    equity = latest if latest is not None else bankroll + realized
    best = session.scalar(select(func.max(EquitySnapshotRow.equity)).where(EquitySnapshotRow.mode == mode))
    peak = max(bankroll, equity, best or ZERO)
    # Daily P&L: realized today, or the equity change since the day began when snapshots say worse.
    daily_pnl = realized_today
    opening = _snapshot(session, mode, before=day_start)
    if opening is not None and latest is not None:
        daily_pnl = min(daily_pnl, latest - opening)
    last_approval = session.scalar(
        select(func.max(RiskDecisionRow.decided_at)).where(
            RiskDecisionRow.mode == mode, RiskDecisionRow.market_id == market_id, RiskDecisionRow.approved.is_(True)
        )
    )
    return RiskState(
        halted=halt.halted,
        halt_reason=halt.reason,
        market_exposure=exposure(session, mode, market_id),
        total_exposure=exposure(session, mode, TOTAL),
        daily_pnl=daily_pnl,
        equity=equity,
        peak_equity=peak,
        last_approval_at=_aware(last_approval),
    )


def _realized(session: Session, mode: str, since: datetime | None = None) -> Decimal:
    query = select(func.coalesce(func.sum(PositionRow.realized_pnl), 0)).where(PositionRow.mode == mode)
    if since is not None:
        query = query.where(PositionRow.settled_at >= since)
    return Decimal(session.scalar(query) or 0)


def _snapshot(session: Session, mode: str, before: datetime | None) -> Decimal | None:
    query = select(EquitySnapshotRow.equity).where(EquitySnapshotRow.mode == mode)
    if before is not None:
        query = query.where(EquitySnapshotRow.taken_at < before)
    return session.scalar(query.order_by(EquitySnapshotRow.taken_at.desc(), EquitySnapshotRow.id.desc()).limit(1))


def _aware(value: datetime | str | None) -> datetime | None:
    """SQLite hands aggregates back as naive strings; the rules compare aware UTC times."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
