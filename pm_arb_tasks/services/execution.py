"""Placing one approved request: claim, check, prepare, post, record. Paper and live alike.

The order of steps is the safety argument (DESIGN.md invariants 1-3):
1. claim the request id durably; a lost claim means an earlier delivery owns it, so we only
   report what that delivery did (asking the venue about its stored hash), never post again; a
   request whose approval is not on record (`claims`) is refused without a claim;
2. prepare (sign) the order and store its hash with the claim, inside an `unknown` outcome that
   carries the whole request: if every delivery dies before recording what the post did,
   reconciliation still has what it needs to write the request's row and settle it;
3. check the halt flag and the deadline immediately before the venue call: the flag as the last
   statement before it read it (the signed order's record; the claim, when the venue signs
   nothing, as paper does, whose preparation checks the side only);
4. post once; an exception after this point is an ambiguous outcome (`unknown`), settled by
   reconciliation, never by posting again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import Connection

from pm_arb_tasks.db import claims
from pm_arb_tasks.db.session import autocommit
from pm_arb_tasks.domain.models import ExecutionResult, RiskDecision, TradeRequest, TradeStatus
from pm_arb_tasks.failures import log_failure
from pm_arb_tasks.security import redact
from pm_arb_tasks.settings import get_settings

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
SIGNED_NOT_ANSWERED = "signed; no delivery recorded what the venue did with it: reconciliation decides"
NOT_ON_RECORD = "no approved decision on record for this request in {mode} mode"


class OrderRefused(Exception):
    """The venue (or our own pre-check) refused the order; nothing was placed."""

    def __init__(self, status: TradeStatus, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PreparedOrder:
    """A signed (live) or checked (paper) order, ready to post; held in memory only."""

    order_hash: str | None = None
    payload: Any = field(default=None, repr=False)


class Venue(Protocol):
    mode: str

    def prepare(self, request: TradeRequest, now: datetime) -> PreparedOrder:
        """Validate and sign; raise OrderRefused when the order cannot be placed."""

    def submit(self, request: TradeRequest, order: PreparedOrder, now: datetime) -> ExecutionResult:
        """Post exactly once and map the venue's reply; raise OrderRefused for a clean refusal."""

    def recover(self, request: TradeRequest, order_hash: str | None, now: datetime) -> ExecutionResult:
        """Report what happened to an order an interrupted delivery may have posted."""


def result_for(
    request: TradeRequest, mode: str, status: TradeStatus, message: str, now: datetime, **fields: Any
) -> ExecutionResult:
    return ExecutionResult(
        request=request, mode=mode, status=status, error_message=message or None, executed_at=now, **fields
    )


def execute(decision: RiskDecision, venue: Venue, clock: Clock) -> ExecutionResult | None:
    """Run one approved decision through the venue; None when risk did not approve it.

    Any exception escaping this function was raised before the venue call (the call itself turns
    every failure into a result), so the request can be handed to `settle_unexecuted`.
    The reservation is settled by the persist stage, which retries until the database answers.
    """
    if not decision.approved:
        return None
    request = _approved_request(decision)
    with autocommit() as conn:  # one checkout for the claim and the claim's writes (they return the halt flag)
        won = claims.claim(request, venue.mode, conn)
        if not won.on_record:
            return _not_on_record(request, venue.mode, clock)
        if won.won:
            result = _place(request, won.halted, venue, clock, conn)
        else:
            result = _earlier_outcome(won, request, venue.mode, lambda: venue, clock)
        _remember(result, conn)
    return result


def settle_unexecuted(decision: RiskDecision, reason: str, clock: Clock) -> ExecutionResult | None:
    """Account for a request that expired in its queue or failed before the venue call.

    It takes the claim so no later delivery can place it, and records `reason` as a rejection;
    if an earlier delivery holds the claim (it may have posted), report what that one did. This
    runs in the persist stage, where the venue is built only if it must be asked.
    """
    if not decision.approved:
        return None
    request = _approved_request(decision)
    mode = get_settings().trading_mode
    won = claims.claim(request, mode)
    if not won.on_record:
        return _not_on_record(request, mode, clock)
    if not won.won:
        return _earlier_outcome(won, request, mode, current_venue, clock)
    result = result_for(request, mode, TradeStatus.REJECTED, reason, clock())
    _remember(result)
    return result


def _not_on_record(request: TradeRequest, mode: str, clock: Clock) -> ExecutionResult:
    """A rejection for a request the guardian's record does not approve: nothing was claimed or
    placed. Should an approval be recorded for it later (its review delivered again after the
    database lost the first decision), the claim still lets one delivery place it, once."""
    message = NOT_ON_RECORD.format(mode=mode)
    log.warning("request %s refused: %s", request.request_id, message)
    return result_for(request, mode, TradeStatus.REJECTED, message, clock())


def _approved_request(decision: RiskDecision) -> TradeRequest:
    return decision.request.model_copy(update={"amount": decision.approved_amount})


def signed_outcome(request: TradeRequest, mode: str, order_hash: str, now: datetime) -> ExecutionResult:
    """What is known once the order is signed and not yet answered: it may reach the venue."""
    return result_for(
        request, mode, TradeStatus.UNKNOWN, SIGNED_NOT_ANSWERED, now, order_hash=order_hash, order_id=order_hash
    )


def _earlier_outcome(
    won: claims.Claim, request: TradeRequest, mode: str, venue_of: Callable[[], Venue], clock: Clock
) -> ExecutionResult:
    """An earlier delivery claimed this request: its stored outcome, or the venue's word on its hash.

    A stored `unknown` (the one written before the post, or an ambiguous reply) is no answer, so
    the venue is asked then too. The venue is built only when it is asked: a venue that cannot be
    reached or configured now (VenueConfigError is never retried) must not leave the request
    without a row, so that case is recorded as `unknown` with the hash, for reconciliation.
    """
    if won.result is not None and won.result.status is not TradeStatus.UNKNOWN:
        result = won.result
    else:
        try:
            venue = venue_of()
        except Exception as exc:
            log.warning("request %s: no venue to ask about its order: %s", request.request_id, redact(str(exc)))
            result = result_for(
                request, mode, TradeStatus.UNKNOWN,
                redact(f"delivered again, venue not asked ({type(exc).__name__}: {exc}); reconciliation decides"),
                clock(), order_hash=won.order_hash, order_id=won.order_hash,
            )
        else:
            result = venue.recover(request, won.order_hash, clock())
    log.warning("request %s delivered again: %s, nothing posted", request.request_id, result.status)
    return result


def _place(request: TradeRequest, halted: bool, venue: Venue, clock: Clock, conn: Connection) -> ExecutionResult:
    """`halted`: the flag as the claim read it, which stands when no signed order is recorded."""
    try:
        order = venue.prepare(request, clock())
        if order.order_hash:
            halted = claims.record(signed_outcome(request, venue.mode, order.order_hash, clock()), conn)
        if halted:
            return result_for(request, venue.mode, TradeStatus.REJECTED, "trading halted", clock())
        if request.expired(clock()):
            return result_for(request, venue.mode, TradeStatus.REJECTED, "deadline passed", clock())
    except OrderRefused as refused:
        return result_for(request, venue.mode, refused.status, redact(str(refused)), clock())
    try:
        return venue.submit(request, order, clock())
    except OrderRefused as refused:
        return result_for(request, venue.mode, refused.status, redact(str(refused)), clock())
    except Exception as exc:  # after the post started, the outcome is ambiguous
        log_failure(log, "order %s: outcome unknown", request.request_id)
        return result_for(
            request, venue.mode, TradeStatus.UNKNOWN, redact(f"{type(exc).__name__}: {exc}"), clock(),
            order_hash=order.order_hash,
        )


def _remember(result: ExecutionResult, held: Connection | None = None) -> None:
    """Store the outcome with the claim; if the database is down, persist still has it."""
    try:
        claims.record(result, held)
    except Exception:  # the chain carries the result on to persist, which retries
        log_failure(log, "could not store the outcome of %s with its claim", result.request.request_id)


@lru_cache(maxsize=1)
def current_venue() -> Venue:
    """Paper or live, chosen in this one place from PAPER_TRADING."""
    if get_settings().paper_trading:
        from pm_arb_tasks.services.paper_venue import PaperVenue

        return PaperVenue()
    from pm_arb_tasks.adapters.polymarket.live import LiveVenue

    return LiveVenue.from_settings(get_settings())
