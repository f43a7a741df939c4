"""Recording order outcomes, and accounting for requests that expired before execution."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.db.trades import record_outcome
from pm_arb_tasks.domain.models import ExecutionResult, RiskDecision, TradeStatus
from pm_arb_tasks.risk import guardian
from pm_arb_tasks.services.execution import result_for

log = logging.getLogger(__name__)


def persist(result: ExecutionResult) -> None:
    with session_scope() as session:
        record_outcome(session, result)


def expired_before_execution(decision: RiskDecision, mode: str) -> ExecutionResult:
    """A request discarded by Celery at its deadline: release its reservation, record why."""
    result = result_for(
        decision.request, mode, TradeStatus.REJECTED, "deadline passed before execution", datetime.now(UTC)
    )
    guardian.settle(decision, result)
    return result
