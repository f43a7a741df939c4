"""The trade chain's tasks: decode, call one service, hand the JSON result on.

Execute and persist acknowledge late and are rejected back to the queue if their worker dies,
so a kill mid-order means a redelivery, which the executor's claim turns into "report, never
post again" (invariant 1). Persist retries database errors forever with capped backoff
(invariant 5); the cap stays below the broker's visibility timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_revoked
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from pm_arb_tasks.celery_app import ProductTask, app
from pm_arb_tasks.domain.models import ExecutionResult, RiskDecision, TradeRequest
from pm_arb_tasks.failures import log_failure
from pm_arb_tasks.risk import guardian
from pm_arb_tasks.security import redact
from pm_arb_tasks.services import alerts, dispatch, execution, outcomes, watchdog

log = logging.getLogger(__name__)
Json = dict[str, Any]
# Database writes retried forever: a database that errors, refuses connections or hangs (the soft
# limit fires inside the task and is retried like an error; a timed-out task would otherwise be
# acknowledged as failed and its record lost). The longest countdown plus the hard limit stays
# inside the broker's visibility timeout (celery_app.redelivery_problems), so a retry is never
# handed to a second worker while the first still holds it.
DB_RETRY = {
    "autoretry_for": (SQLAlchemyError, OSError, SoftTimeLimitExceeded),
    "retry_backoff": 1,
    "retry_backoff_max": 10,
    "retry_jitter": True,
    "max_retries": None,
    "soft_time_limit": 8,
    "time_limit": 10,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


@app.task(name="pm_arb.scan.submit")
def submit(request: Json) -> None:
    """Start the chain for one ready-made request (`pm-arb trade`, tests)."""
    dispatch.dispatch(TradeRequest.model_validate(request))


class _ReviewTask(ProductTask):
    def on_success(self, retval: Json, task_id: str, args: Any, kwargs: Any) -> None:
        """The decision in the log once the executor's message is out: Celery calls this after it
        publishes the chain's next step, and a log line (redacted, formatted, written) costs the
        order path ~0.15 ms where it stood before the return."""
        log.info(
            "risk %s %s: %s", retval["request"]["request_id"], "approved" if retval["approved"] else "rejected",
            retval["reason"],
        )


@app.task(name="pm_arb.risk.review", base=_ReviewTask, acks_late=True, reject_on_worker_lost=True)
def review(request: Json) -> Json:
    trade = TradeRequest.model_validate(request)
    try:
        decision = guardian.review(trade, utcnow())
    except SQLAlchemyError:  # no decision can be recorded, so none is approved: fail safe
        log_failure(log, "risk review of %s impossible; rejected", trade.request_id)
        decision = RiskDecision(request=trade, approved=False, reason="database unavailable", decided_at=utcnow())
    return decision.model_dump(mode="json")


@app.task(
    name="pm_arb.execute.order", acks_late=True, reject_on_worker_lost=True, soft_time_limit=8, time_limit=10
)
def execute_order(decision: Json) -> Json | None:
    try:
        result = execution.execute(RiskDecision.model_validate(decision), execution.current_venue(), utcnow)
    except Exception as exc:  # raised before any venue call: hand the request to the retrying stage
        log_failure(log, "execute failed before the venue call; accounting for the request in persist")
        account_unexecuted.delay(decision, redact(f"not executed: {type(exc).__name__}: {exc}"))
        return None
    return result.model_dump(mode="json") if result else None


@app.task(name="pm_arb.persist.record", acks_late=True, reject_on_worker_lost=True, **DB_RETRY)
def persist_outcome(result: Json | None) -> Json | None:
    if result is not None:
        with _database_outage_noticed():
            outcomes.record(ExecutionResult.model_validate(result))
    return result


@app.task(name="pm_arb.persist.account_unexecuted", acks_late=True, reject_on_worker_lost=True, **DB_RETRY)
def account_unexecuted(decision: Json, reason: str) -> None:
    """A request that expired in its queue or failed before the venue call still ends as a row:
    claimed (so it can never be placed later), recorded, its reservation released."""
    with _database_outage_noticed():
        result = execution.settle_unexecuted(RiskDecision.model_validate(decision), reason, utcnow)
        if result is not None:
            outcomes.record(result)
    if result is not None:
        alert_outcome.delay(result.model_dump(mode="json"))


@app.task(name="pm_arb.alert.trade", acks_late=True, **DB_RETRY)
def alert_outcome(result: Json | None) -> None:
    if result is not None:
        alerts.alert_for_outcome(ExecutionResult.model_validate(result))


@contextmanager
def _database_outage_noticed() -> Iterator[None]:
    """A failed database write opens the outage incident (one direct alert), then retries as before."""
    try:
        yield
    except OperationalError:
        watchdog.notice_database_outage(utcnow())
        raise


@task_revoked.connect
def _account_for_expired_order(sender: Any = None, request: Any = None, expired: bool = False, **_: Any) -> None:
    """An execute message that outlived its deadline is accounted for by the persist stage, which
    checks the claim first: a redelivery of an order that was placed before a crash is reported as
    what it was, never as "expired"."""
    if not expired or getattr(sender, "name", "") != execute_order.name or not request or not request.args:
        return
    try:
        account_unexecuted.delay(request.args[0], "deadline passed before execution")
    except Exception:  # accounting must never take the worker down
        log_failure(log, "could not account for expired request")
