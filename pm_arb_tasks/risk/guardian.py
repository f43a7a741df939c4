"""The risk guardian: approve, reduce or reject each trade request, and account for its outcome.

`review` decides under the mode's lock (see `risk.book`): it reads the book, applies the pure
rules, reserves the approved amount and records the decision in one transaction, so any number
of risk workers never approve past a limit, and a redelivered request gets its first decision
back instead of a second reservation. `settle` releases what the execution did not use, once.
A daily-loss or drawdown breach halts trading durably, in that same transaction, and raises a
critical alert once per halt.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import RiskDecisionRow
from pm_arb_tasks.db.session import autocommit, session_scope
from pm_arb_tasks.domain.models import ZERO, ExecutionResult, RiskDecision, TradeRequest, TradeStatus
from pm_arb_tasks.domain.risk_rules import RiskLimits, Verdict, evaluate
from pm_arb_tasks.failures import log_failure
from pm_arb_tasks.risk import book
from pm_arb_tasks.services.alerts import raise_alert
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.halt import HaltState

log = logging.getLogger(__name__)

# Outcomes that may still turn into fills: the reservation stays until reconciliation settles them.
OPEN_STATUSES = frozenset({TradeStatus.UNKNOWN, TradeStatus.PENDING})
CLOSED = "closed"  # a settled decision whose market resolved: its kept cost no longer counts


def review(request: TradeRequest, now: datetime) -> RiskDecision:
    """The decision for `request`: recorded, reserved, idempotent by request id.

    A loss-limit breach sets the halt flag in the same transaction, so the reviews queued
    behind the lock see the halt rather than the breach, and only this one alerts.
    """
    settings = get_settings()
    mode = settings.trading_mode
    limits = RiskLimits.from_settings(settings)
    with autocommit() as conn, book.transaction(conn):
        earlier, state = book.open_review(
            conn, mode, request.market_id, request.request_id, settings.initial_bankroll, now
        )
        if earlier is not None:
            return _decision_from_row(request, book.earlier_decision(conn, request.request_id))
        verdict = evaluate(request.amount, request.min_amount, state, limits, now, request.deadline)
        book.close_review(conn, mode, request, verdict, now)
    if verdict.breach:
        _alert_halt(verdict, mode, HaltState(True, verdict.reason, now))
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
        book.lock_total(session, row.mode, now)
        session.refresh(row)  # what the last settler committed, now that we hold the lock
        if row.settled_status is not None:
            return
        # An order never spends more than its approved amount (the venue takes at most the USD it
        # was signed for); a cost above it is the recorded VWAP's rounding to 8 decimals times the
        # shares, dust that would otherwise push the exposure past a limit the approval respected.
        kept = min(kept, row.approved_amount)
        book.add_exposure(session, row.mode, row.market_id, kept - row.approved_amount, now)
        row.settled_status, row.kept_amount, row.settled_at = status.value, kept, now


def hold_book(session: Session, mode: str, now: datetime) -> None:
    """Take the mode's lock for the rest of `session`'s transaction, before any row it writes:
    every writer of the book locks in that order, so none waits on another in a circle."""
    book.lock_total(session, mode, now)


def release_market(session: Session, mode: str, market_id: str, now: datetime) -> None:
    """A market resolved: nothing on it is at risk any more, kept cost or open reservation.

    Runs in the transaction that settles the market's position (`positions`), so a settled
    position never leaves its reservation behind: a crash between two commits would have, and
    nothing would ever release it. Idempotent; a later settle of one of its requests (a late
    reconciliation) finds it closed and releases nothing twice.
    """
    hold_book(session, mode, now)
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


def _decision_from_row(request: TradeRequest, row: Any) -> RiskDecision:
    return RiskDecision(
        request=request, approved=row.approved, reason=row.reason, approved_amount=row.approved_amount,
        decided_at=row.decided_at,
    )


def _alert_halt(verdict: Verdict, mode: str, halt: HaltState) -> None:
    """Tell the operator about a halt already committed with the breach (the halt, not the
    alert, is what protects the money).

    Keyed on the halt's start: each halt alerts once, however often the alert is retried, and a
    halt after `pm-arb resume` alerts again, the same day or not.
    """
    try:
        raise_alert(
            kind="risk_halt",
            priority=2,
            title=f"Trading halted: {verdict.breach} limit",
            message=f"{verdict.reason} ({mode}). Run `pm-arb resume` after review.",
            alert_id=f"risk-halt-{verdict.breach}-{mode}-{halt.since:%Y%m%dT%H%M%S%f}",
            dedupe_key=f"risk-halt-{verdict.breach}",
        )
    except Exception:
        log_failure(log, "halt set, but the alert could not be recorded")
