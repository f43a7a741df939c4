"""The executor's durable claims on request ids (DESIGN.md invariant 1).

`claim` is one autocommit `INSERT ... ON CONFLICT DO NOTHING RETURNING`: the primary key on
`request_id` makes the insert the arbiter, so of two deliveries racing on two processes exactly
one gets its row back, and the claim is committed before the caller goes on towards the venue.
Only the loser reads the row the winner wrote. Nothing touches the venue before a claim is won.
The later write (`record`, before the post and after it) is a single statement too.

The claim and the record of a signed order also return the halt flag (a subquery in RETURNING,
so the halt check costs no round trip of its own): the executor reads it from whichever of the
two is its last statement before the venue call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, exists, select, update

from pm_arb_tasks.db.models import OrderClaimRow, SystemStateRow
from pm_arb_tasks.db.session import autocommit, dialect_insert
from pm_arb_tasks.db.trades import trade_table
from pm_arb_tasks.domain.models import ExecutionResult, TradeRequest
from pm_arb_tasks.state.halt import HALT_KEY, halts_trading

_HALT = select(SystemStateRow.value).where(SystemStateRow.key == HALT_KEY).scalar_subquery().label("halt")
_CLAIM = {
    dialect: dialect_insert(dialect)(OrderClaimRow).on_conflict_do_nothing().returning(OrderClaimRow.request_id, _HALT)
    for dialect in ("postgresql", "sqlite")
}
_EARLIER = select(OrderClaimRow.order_hash, OrderClaimRow.result)


@dataclass(frozen=True)
class Claim:
    won: bool  # False: an earlier delivery claimed this request
    order_hash: str | None = None
    result: ExecutionResult | None = None
    halted: bool = True  # the halt flag as the winning claim read it; a lost claim read nothing


def claim(request: TradeRequest, mode: str, held: Connection | None = None) -> Claim:
    """`held`: an autocommit connection to run on (see `session.autocommit`)."""
    values = {"request_id": request.request_id, "trade_id": request.trade_id, "mode": mode}
    with autocommit(held) as conn:
        won = conn.execute(_CLAIM[conn.dialect.name], values).first()
        if won is not None:
            return Claim(won=True, halted=halts_trading(won.halt))
        row = conn.execute(_EARLIER.where(OrderClaimRow.request_id == request.request_id)).first()
    if row is None:  # pragma: no cover - the conflicting row cannot vanish
        raise RuntimeError(f"claim for {request.request_id} conflicted but is missing")
    result = ExecutionResult.model_validate(row.result) if row.result else None
    return Claim(won=False, order_hash=row.order_hash, result=result)


def record(outcome: ExecutionResult, held: Connection | None = None) -> bool:
    """The latest outcome known for a claimed request, in one statement: first the provisional
    `unknown` written before the post (the signed order's hash with the whole request, so a
    redelivery asks the venue about that hash and, if every delivery dies before recording what
    the post did, reconciliation can still write the request's row: `unrecorded`), then the final
    one. A stored hash is never cleared by an outcome that has none. Returns the halt flag as the
    statement read it."""
    values = {"status": outcome.status.value, "result": outcome.model_dump(mode="json")}
    if outcome.order_hash:
        values["order_hash"] = outcome.order_hash
    with autocommit(held) as conn:
        statement = update(OrderClaimRow).where(OrderClaimRow.request_id == outcome.request.request_id)
        halt = conn.execute(statement.values(values).returning(_HALT)).scalar()
    return halts_trading(halt)


def unrecorded(mode: str, claimed_before: datetime, limit: int) -> list[ExecutionResult]:
    """Outcomes stored with claims older than `claimed_before` whose trade row was never written
    (every delivery died, or the persist message was lost), oldest first."""
    table = trade_table(mode)
    query = (
        select(OrderClaimRow.result)
        .where(
            OrderClaimRow.mode == mode,
            OrderClaimRow.result.is_not(None),
            OrderClaimRow.claimed_at < claimed_before,
            ~exists().where(table.trade_id == OrderClaimRow.trade_id),
        )
        .order_by(OrderClaimRow.claimed_at)
        .limit(limit)
    )
    with autocommit() as conn:
        return [ExecutionResult.model_validate(result) for result in conn.scalars(query)]
