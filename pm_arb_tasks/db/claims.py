"""The executor's durable claims on request ids (DESIGN.md invariant 1).

`claim` is one autocommit `INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING`: the primary
key on `request_id` makes the insert the arbiter, so of two deliveries racing on two processes
exactly one gets its row back, and the claim is committed before the caller goes on towards the
venue. Only the loser reads the row the winner wrote. Nothing touches the venue before a claim is
won. The later write (`record`, before the post and after it) is a single statement too.

A claim is taken only for a request whose approval is on record: an approved decision with the
request's id, in the claim's mode. The executor therefore places nothing the guardian did not
record, whatever a message says: not a decision lost with the database server (the guardian's
commit does not wait for its WAL flush; the claim's own flush, which must finish before any
venue call, writes the earlier decision to disk with it, since the log is written in order), nor
an approval from paper trading delivered to a live executor, nor a message written by hand.

The claim and the record of a signed order also return the halt flag (a subquery in RETURNING,
so the halt check costs no round trip of its own): the executor reads it from whichever of the
two is its last statement before the venue call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, String, bindparam, exists, literal, select, update

from pm_arb_tasks.db.models import OrderClaimRow, RiskDecisionRow, SystemStateRow, UTCDateTime
from pm_arb_tasks.db.session import autocommit, dialect_insert
from pm_arb_tasks.db.trades import trade_table
from pm_arb_tasks.domain.models import ExecutionResult, TradeRequest
from pm_arb_tasks.state.halt import HALT_KEY, halts_trading

_HALT = select(SystemStateRow.value).where(SystemStateRow.key == HALT_KEY).scalar_subquery().label("halt")
_REQUEST, _MODE = bindparam("claim_request", type_=String()), bindparam("claim_mode", type_=String())
_NOW = bindparam("claim_now", type_=UTCDateTime())
_APPROVED_ON_RECORD = exists().where(
    RiskDecisionRow.request_id == _REQUEST, RiskDecisionRow.mode == _MODE, RiskDecisionRow.approved.is_(True)
)
_CLAIMABLE = select(
    _REQUEST, bindparam("claim_trade", type_=String()), _MODE, literal("claimed"), _NOW, _NOW
).where(_APPROVED_ON_RECORD)
_CLAIM = {
    dialect: dialect_insert(dialect)(OrderClaimRow)
    .from_select(("request_id", "trade_id", "mode", "status", "claimed_at", "updated_at"), _CLAIMABLE)
    .on_conflict_do_nothing()
    .returning(OrderClaimRow.request_id, _HALT)
    for dialect in ("postgresql", "sqlite")
}
_EARLIER = select(OrderClaimRow.order_hash, OrderClaimRow.result)


@dataclass(frozen=True)
class Claim:
    won: bool  # False: an earlier delivery claimed this request, or its approval is not on record
    order_hash: str | None = None
    result: ExecutionResult | None = None
    halted: bool = True  # the halt flag as the winning claim read it; a lost claim read nothing
    on_record: bool = True  # False: no approved decision for this request in this mode, no claim taken


def claim(request: TradeRequest, mode: str, held: Connection | None = None) -> Claim:
    """`held`: an autocommit connection to run on (see `session.autocommit`)."""
    values = {
        "claim_request": request.request_id, "claim_trade": request.trade_id, "claim_mode": mode,
        "claim_now": datetime.now(UTC),
    }
    with autocommit(held) as conn:
        won = conn.execute(_CLAIM[conn.dialect.name], values).first()
        if won is not None:
            return Claim(won=True, halted=halts_trading(won.halt))
        row = conn.execute(_EARLIER.where(OrderClaimRow.request_id == request.request_id)).first()
    if row is None:  # nothing conflicted: the insert found no approval to claim for
        return Claim(won=False, on_record=False)
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
