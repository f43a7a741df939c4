"""Helpers for the risk and scan tests: requests, results and a look at the risk book."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import delete, select

from pm_arb_tasks.db.models import (
    AlertRow,
    EquitySnapshotRow,
    OpportunityRow,
    RiskDecisionRow,
    RiskExposureRow,
    SystemStateRow,
)
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import ExecutionResult, Outcome, RiskDecision, TradeRequest, TradeStatus
from tests.support.env import flush_redis, fresh_database, point_process_at

# Redis DBs of the strategy & risk area (7-9), in one place.
RACE_REDIS_DB = 7
GUARDIAN_REDIS_DB = 8
SCAN_REDIS_DB = 9


@contextmanager
def risk_stores(redis_db: int, database: str = "postgres", **settings: str) -> Iterator[dict[str, str]]:
    """A fresh database ("postgres": a schema; "sqlite": a file) and Redis DB for one test module,
    with `settings` in the environment; the environment is put back afterwards so no other module
    inherits them. Yields the worker env."""
    saved = {name: os.environ.get(name) for name in ("REDIS_URL", "DATABASE_URL", *settings)}
    with tempfile.TemporaryDirectory() as tmp_dir, fresh_database(database, "risk", tmp_dir) as url:
        flush_redis(redis_db)
        try:
            yield point_process_at(redis_db=redis_db, database_url=url, **settings)
        finally:
            flush_redis(redis_db)
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            from pm_arb_tasks.settings import get_settings

            get_settings.cache_clear()


def request(market_id: str, amount: str, *, min_amount: str = "0", ttl: float = 120) -> TradeRequest:
    now = datetime.now(UTC)
    return TradeRequest(
        market_id=market_id, token_id=f"{market_id}-yes", outcome=Outcome.YES, amount=D(amount),
        min_amount=D(min_amount), limit_price=D("0.50"), tick_at=now, deadline=now + timedelta(seconds=ttl),
    )


def result(decision: RiskDecision, status: TradeStatus, shares: str = "0", price: str | None = None) -> ExecutionResult:
    return ExecutionResult(
        request=decision.request, mode="paper", status=status, filled_amount=D(shares),
        fill_price=D(price) if price is not None else None, executed_at=datetime.now(UTC),
    )


def exposure(market_id: str = "*", mode: str = "paper") -> D:
    with session_scope() as session:
        amount = session.scalar(
            select(RiskExposureRow.amount).where(RiskExposureRow.mode == mode, RiskExposureRow.market_id == market_id)
        )
    return amount if amount is not None else D(0)


def decisions() -> list[RiskDecisionRow]:
    with session_scope() as session:
        return list(session.scalars(select(RiskDecisionRow).order_by(RiskDecisionRow.id)))


def snapshot(equity: str, *, at: datetime | None = None, mode: str = "paper") -> None:
    with session_scope() as session:
        session.add(
            EquitySnapshotRow(
                mode=mode, equity=D(equity), realized_pnl=D(0), unrealized_pnl=D(0), taken_at=at or datetime.now(UTC)
            )
        )


def reset_book() -> None:
    """Forget every decision, exposure, snapshot, alert, opportunity and the halt flag."""
    with session_scope() as session:
        for model in (RiskDecisionRow, RiskExposureRow, EquitySnapshotRow, AlertRow, SystemStateRow, OpportunityRow):
            session.execute(delete(model))
