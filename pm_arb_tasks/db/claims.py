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

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Connection, String, Text, bindparam, exists, select, text

from pm_arb_tasks.db import driver
from pm_arb_tasks.db.models import OrderClaimRow, RiskDecisionRow, SystemStateRow, UTCDateTime
from pm_arb_tasks.db.session import autocommit
from pm_arb_tasks.db.trades import trade_table
from pm_arb_tasks.domain.models import ExecutionResult, TradeRequest
from pm_arb_tasks.state.halt import HALT_KEY, halts_trading

# The claim and the record of an outcome as SQL text, the same on both dialects, so that
# PostgreSQL's run on the driver's cursor (`db.driver`: the claim is the executor's last wait
# before a paper order, the record of the signed order before a live one); SQLite's go through
# SQLAlchemy, typed. The claim's SELECT has a WHERE, which is what lets SQLite tell its ON CONFLICT
# from a join's ON.
_HALT_SQL = f"(SELECT value FROM {SystemStateRow.__tablename__} WHERE key = :halt_key) AS halt"
_CLAIM_SQL = (
    f"INSERT INTO {OrderClaimRow.__tablename__} (request_id, trade_id, mode, status, claimed_at, updated_at)"
    " SELECT :claim_request, :claim_trade, :claim_mode, 'claimed', :claim_now, :claim_now"
    f" WHERE EXISTS (SELECT 1 FROM {RiskDecisionRow.__tablename__}"
    " WHERE request_id = :claim_request AND mode = :claim_mode AND approved)"
    f" ON CONFLICT DO NOTHING RETURNING request_id, {_HALT_SQL}"
)
_RECORD_SQL = (
    f"UPDATE {OrderClaimRow.__tablename__} SET status = :record_status, result = :record_result,"
    " order_hash = coalesce(:record_hash, order_hash), updated_at = :record_now WHERE request_id = :record_request"
    f" RETURNING {_HALT_SQL}"
)
_TYPED = {
    _CLAIM_SQL: text(_CLAIM_SQL).bindparams(
        bindparam("claim_request", type_=String()), bindparam("claim_trade", type_=String()),
        bindparam("claim_mode", type_=String()), bindparam("claim_now", type_=UTCDateTime()),
        bindparam("halt_key", type_=String()),
    ).columns(request_id=String(), halt=Text()),
    _RECORD_SQL: text(_RECORD_SQL).bindparams(
        bindparam("record_status", type_=String()), bindparam("record_result", type_=JSON()),
        bindparam("record_hash", type_=String()), bindparam("record_now", type_=UTCDateTime()),
        bindparam("record_request", type_=String()), bindparam("halt_key", type_=String()),
    ).columns(halt=Text()),
}


def _returning(conn: Connection, sql: str, values: dict[str, Any]) -> Any:
    """The first row `sql` returns on `conn` (None if none): on the driver's cursor on PostgreSQL
    (the outcome's JSON sent as text, which the column takes), typed by SQLAlchemy elsewhere."""
    values = values | {"halt_key": HALT_KEY}
    if driver.on_driver(conn):
        if "record_result" in values:
            values["record_result"] = json.dumps(values["record_result"])
        return driver.run(conn, sql, values)
    return conn.execute(_TYPED[sql], values).first()


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
        won = _returning(conn, _CLAIM_SQL, values)
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
    values = {
        "record_status": outcome.status.value, "record_result": outcome.model_dump(mode="json"),
        "record_hash": outcome.order_hash or None, "record_now": datetime.now(UTC),
        "record_request": outcome.request.request_id,
    }
    with autocommit(held) as conn:
        row = _returning(conn, _RECORD_SQL, values)
    return halts_trading(row.halt if row is not None else None)


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
