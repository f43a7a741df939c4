"""The executor's durable claims on request ids (DESIGN.md invariant 1).

`claim` inserts the row or finds the one a previous delivery inserted; the primary key on
`request_id` makes the insert the arbiter, so two deliveries racing on two processes cannot both
win. Nothing touches the venue before a claim is won.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from pm_arb_tasks.db.models import OrderClaimRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import ExecutionResult, TradeRequest


@dataclass(frozen=True)
class Claim:
    won: bool  # False: an earlier delivery claimed this request
    order_hash: str | None = None
    result: ExecutionResult | None = None


def claim(request: TradeRequest, mode: str) -> Claim:
    try:
        with session_scope() as session:
            session.add(OrderClaimRow(request_id=request.request_id, trade_id=request.trade_id, mode=mode))
        return Claim(won=True)
    except IntegrityError:
        pass
    with session_scope() as session:
        row = session.scalar(select(OrderClaimRow).where(OrderClaimRow.request_id == request.request_id))
    if row is None:  # pragma: no cover - the conflicting row cannot vanish
        raise RuntimeError(f"claim for {request.request_id} conflicted but is missing")
    result = ExecutionResult.model_validate(row.result) if row.result else None
    return Claim(won=False, order_hash=row.order_hash, result=result)


def record_hash(request_id: str, order_hash: str) -> None:
    """Written before the post, so a redelivery asks the venue about this hash."""
    with session_scope() as session:
        session.execute(
            update(OrderClaimRow).where(OrderClaimRow.request_id == request_id).values(order_hash=order_hash)
        )


def complete(result: ExecutionResult) -> None:
    with session_scope() as session:
        session.execute(
            update(OrderClaimRow)
            .where(OrderClaimRow.request_id == result.request.request_id)
            .values(status=result.status.value, result=result.model_dump(mode="json"))
        )
