"""Recording order outcomes: the trade row, the position, and the risk reservation they settle."""

from __future__ import annotations

from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.db.trades import record_outcome
from pm_arb_tasks.domain.models import ExecutionResult
from pm_arb_tasks.risk import guardian


def record(result: ExecutionResult) -> None:
    """Upsert the trade row, then release what the order did not use; both idempotent, so the
    persist stage can retry the pair until the database answers (invariants 4 and 5)."""
    with session_scope() as session:
        record_outcome(session, result)
    guardian.release_unused(result.request.request_id, result)
