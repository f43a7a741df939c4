"""The risk guardian: approve, reduce or reject each trade request, and account for its outcome.

`review` decides under the mode's lock (see `risk.book`): it reads the book, applies the pure
rules, reserves the approved amount and records the decision in one transaction, so any number
of risk workers never approve past a limit, and a redelivered request gets its first decision
back instead of a second reservation. `settle` releases what the execution did not use, once.
A daily-loss or drawdown breach halts trading durably and raises a critical alert.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import or_, select

from pm_arb_tasks.db.models import RiskDecisionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import ZERO, ExecutionResult, RiskDecision, TradeRequest, TradeStatus
from pm_arb_tasks.domain.risk_rules import RiskLimits, Verdict, evaluate
from pm_arb_tasks.failures import log_failure
from pm_arb_tasks.risk import book
from pm_arb_tasks.services.alerts import raise_alert
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.halt import set_halt

log = logging.getLogger(__name__)

# Outcomes that may still turn into fills: the reservation stays until reconciliation settles them.
OPEN_STATUSES = frozenset({TradeStatus.UNKNOWN, TradeStatus.PENDING})
CLOSED = "closed"  # a settled decision whose market resolved: its kept cost no longer counts


def review(request: TradeRequest, now: datetime) -> RiskDecision:
    """The decision for `request`: recorded, reserved, idempotent by request id."""
    settings = get_settings()
    mode = get_settings().trading_mode
    limits = RiskLimits.from_settings(settings)
    with session_scope() as session:
        book.lock_total(session, mode)
        row = session.scalar(select(RiskDecisionRow).where(RiskDecisionRow.request_id == request.request_id))
        if row is not None:
            return _decision_from_row(request, row)
        state = book.read_state(session, mode, request.market_id, settings.initial_bankroll, now)
        verdict = evaluate(request.amount, request.min_amount, state, limits, now, request.deadline)
        if verdict.approved:
            book.add_exposure(session, mode, request.market_id, verdict.amount, now)
        session.add(
            RiskDecisionRow(
                request_id=request.request_id,
                market_id=request.market_id,
                outcome=request.outcome.value,
                mode=mode,
                approved=verdict.approved,
                reason=verdict.reason[:200],
                requested_amount=request.amount,
                approved_amount=verdict.amount,
                decided_at=now,
            )
        )
    if verdict.breach:
        _halt_on_breach(verdict, mode, now)
    log.info("risk %s %s: %s", request.request_id, "approved" if verdict.approved else "rejected", verdict.reason)
    return RiskDecision(
        request=request, approved=verdict.approved, reason=verdict.reason, approved_amount=verdict.amount,
        decided_at=now,
    )


def settle(decision: RiskDecision, result: ExecutionResult | None) -> None:
    """Release the unused part of an approved reservation (see `release_unused`)."""
    if decision.approved:
        release_unused(decision.request.request_id, result)


def release_unused(request_id: str, result: ExecutionResult | None) -> None:
    """Release the unused part of the request's reservation, exactly once per request.

    failed/rejected/none -> release all; partial/filled -> keep the filled cost; unknown/pending ->
    keep everything until reconciliation settles again with the final result. A request without an
    approved decision on record has nothing to release.
    """
    status = result.status if result is not None else TradeStatus.REJECTED
    if status in OPEN_STATUSES:
        return
    kept = result.cost if result is not None and status in (TradeStatus.FILLED, TradeStatus.PARTIAL) else ZERO
    now = datetime.now(UTC)
    with session_scope() as session:
        row = session.scalar(select(RiskDecisionRow).where(RiskDecisionRow.request_id == request_id))
        if row is None or not row.approved:
            log.warning("settle %s: no approved decision on record, nothing to release", request_id)
            return
        book.lock_total(session, row.mode)
        session.refresh(row)  # what the last settler committed, now that we hold the lock
        if row.settled_status is not None:
            return
        book.add_exposure(session, row.mode, row.market_id, kept - row.approved_amount, now)
        row.settled_status, row.kept_amount, row.settled_at = status.value, kept, now


def release_market(market_id: str, mode: str | None = None) -> None:
    """A market resolved: nothing on it is at risk any more, kept cost or open reservation.

    Idempotent; called by position settlement. A later settle of one of its requests (a late
    reconciliation) finds it closed and releases nothing twice.
    """
    mode = mode or get_settings().trading_mode
    now = datetime.now(UTC)
    with session_scope() as session:
        book.lock_total(session, mode)
        rows = session.scalars(
            select(RiskDecisionRow).where(
                RiskDecisionRow.mode == mode,
                RiskDecisionRow.market_id == market_id,
                RiskDecisionRow.approved.is_(True),
                or_(RiskDecisionRow.settled_status.is_(None), RiskDecisionRow.settled_status != CLOSED),
            )
        ).all()
        released = ZERO
        for row in rows:
            released += row.approved_amount if row.settled_status is None else (row.kept_amount or ZERO)
            row.settled_status, row.settled_at = CLOSED, row.settled_at or now
        if released:
            book.add_exposure(session, mode, market_id, -released, now)


def _decision_from_row(request: TradeRequest, row: RiskDecisionRow) -> RiskDecision:
    return RiskDecision(
        request=request, approved=row.approved, reason=row.reason, approved_amount=row.approved_amount,
        decided_at=row.decided_at,
    )


def _halt_on_breach(verdict: Verdict, mode: str, now: datetime) -> None:
    """Halt durably first (that is what protects the money), then tell the operator once a day."""
    set_halt(True, verdict.reason)
    try:
        raise_alert(
            kind="risk_halt",
            priority=2,
            title=f"Trading halted: {verdict.breach} limit",
            message=f"{verdict.reason} ({mode}). Run `pm-arb resume` after review.",
            alert_id=f"risk-halt-{verdict.breach}-{mode}-{now:%Y%m%d}",
            dedupe_key=f"risk-halt-{verdict.breach}",
        )
    except Exception:
        log_failure(log, "halt set, but the alert could not be recorded")
