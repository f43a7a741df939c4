"""The risk book in the database: exposure per market, its total, and the numbers the rules need.

Why a database row lock and not a Redis script: the reservation, the recorded decision and the
idempotency check must commit together (a crash between a Redis reservation and the decision
row would leak or double-count exposure), and the book must survive a Redis restart, like the
halt flag. Every writer locks the mode's total row first (an UPDATE of it), so decisions and
settlements for a mode are serialised across any number of worker processes and hosts.

The locked transaction is kept short, because every other risk worker waits on it. A review is
two round trips on PostgreSQL (`open_review`: BEGIN, the lock, the read; `close_review`: the
move, the decision, the halt on a breach, COMMIT, which does not wait for the WAL flush unless it
halts): psycopg2 sends a string of statements as one query, and BEGIN and COMMIT travel with the
statements instead of costing a trip each; the string goes on the driver's cursor (`db.driver`).
SQLite's driver takes one statement per call, so there the same statements run one by one,
through SQLAlchemy. The statements are SQL text, built once here and the same for both dialects:
text is compiled once per process, and a multi-row VALUES insert built as an expression would be
compiled again on every call (~0.6 ms).

Why the lock and the read are two statements: under READ COMMITTED (PostgreSQL's default) a
statement sees the database as of its own start, also inside a string of several. A statement
that waited for the lock would still read what was there before the lock holder committed; the
SELECT after it starts later, so it sees every decision and settlement that held the lock
before us.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Boolean, Connection, Integer, String, Text, TextClause, bindparam, text
from sqlalchemy.orm import Session

from pm_arb_tasks.db import driver
from pm_arb_tasks.db.models import (
    MONEY,
    EquitySnapshotRow,
    PositionRow,
    RiskDecisionRow,
    RiskExposureRow,
    SystemStateRow,
    UTCDateTime,
)
from pm_arb_tasks.domain.models import ZERO, TradeRequest
from pm_arb_tasks.domain.risk_rules import RiskState, Verdict
from pm_arb_tasks.state.halt import HALT_BINDS, HALT_KEY, WRITE_HALT_SQL, halt_from, halt_params

TOTAL = "*"

_EXPOSURE = RiskExposureRow.__tablename__
_POSITIONS = PositionRow.__tablename__
_SNAPSHOTS = EquitySnapshotRow.__tablename__
_DECISIONS = RiskDecisionRow.__tablename__
_STATE = SystemStateRow.__tablename__

# Typed, so every statement binds a parameter alike (UTC times, Decimal money); each statement
# takes the ones it names.
_BINDS = (
    bindparam("book_mode", type_=String()),
    bindparam("book_market", type_=String()),
    bindparam("book_total", TOTAL, type_=String()),
    bindparam("book_request", type_=String()),
    bindparam("book_now", type_=UTCDateTime()),
    bindparam("book_day_start", type_=UTCDateTime()),
    bindparam("book_delta", type_=MONEY),
    bindparam("book_outcome", type_=String()),
    bindparam("book_approved", type_=Boolean()),
    bindparam("book_reason", type_=String()),
    bindparam("book_requested", type_=MONEY),
    bindparam("book_approved_amount", type_=MONEY),
    bindparam("book_halt_key", HALT_KEY, type_=Text()),
    bindparam("book_bankroll", type_=MONEY),
    *HALT_BINDS,
)

_BEGIN = "BEGIN"
_BEGIN_ON = {"sqlite": "BEGIN IMMEDIATE"}  # SQLite has no row locks: its write lock up front
_COMMIT = "COMMIT"
# The review's commit returns without waiting for the WAL flush (PostgreSQL only; ~0.2 ms). Safe
# because nothing leaves the process on the strength of a decision before the executor's claim,
# which needs the approval on record and whose own flush writes the earlier decision to disk
# with it (`db.claims`): a decision lost with the server can place nothing. A halt is
# committed durably, since its alert goes out at once.
_NO_FLUSH_WAIT = "SET LOCAL synchronous_commit TO OFF"
_POSTGRESQL_ONLY = frozenset({_NO_FLUSH_WAIT})
# The mode's lock: the total row, created on first use, in one statement. An upsert locks the row
# it updates as an UPDATE does, and one that inserts holds the new key until it commits, so a
# second review that tries the same insert waits and then takes the update path, locking the
# committed row.
_LOCK = (
    f"INSERT INTO {_EXPOSURE} (mode, market_id, amount, updated_at) VALUES (:book_mode, :book_total, 0, :book_now)"
    " ON CONFLICT (mode, market_id) DO UPDATE SET updated_at = excluded.updated_at RETURNING amount"
)
# Market and total by the same delta in one statement, the market row created on first use.
_MOVE = (
    f"INSERT INTO {_EXPOSURE} (mode, market_id, amount, updated_at)"
    " VALUES (:book_mode, :book_market, :book_delta, :book_now), (:book_mode, :book_total, :book_delta, :book_now)"
    " ON CONFLICT (mode, market_id) DO UPDATE"
    f" SET amount = {_EXPOSURE}.amount + excluded.amount, updated_at = excluded.updated_at"
)
_DECIDE = (
    f"INSERT INTO {_DECISIONS}"
    " (request_id, market_id, outcome, mode, approved, reason, requested_amount, approved_amount, decided_at)"
    " VALUES (:book_request, :book_market, :book_outcome, :book_mode, :book_approved, :book_reason,"
    " :book_requested, :book_approved_amount, :book_now)"
)
_EARLIER = f"SELECT approved, reason, approved_amount, decided_at FROM {_DECISIONS} WHERE request_id = :book_request"


def _equity(where: str = "") -> str:
    return (
        f"(SELECT equity FROM {_SNAPSHOTS} WHERE mode = :book_mode{where}"
        " ORDER BY taken_at DESC, id DESC LIMIT 1)"
    )


# Everything the rules need in one statement; `total` is the locked row as the lock left it.
# Equity is the latest snapshot, or before the first one the bankroll plus every realized P&L:
# COALESCE evaluates its second argument only when the first is NULL, so once snapshots exist
# (beat takes one every 30 s) no review sums the mode's whole position history, which grows with
# every trade. "Realized today" reads only the day's settlements (an index).
_READ = (
    "SELECT"
    f" (SELECT id FROM {_DECISIONS} WHERE request_id = :book_request) AS earlier,"
    f" (SELECT value FROM {_STATE} WHERE key = :book_halt_key) AS halt,"
    f" coalesce({_equity()}, :book_bankroll"
    f" + (SELECT coalesce(sum(realized_pnl), 0) FROM {_POSITIONS} WHERE mode = :book_mode)) AS equity,"
    f" (SELECT coalesce(sum(realized_pnl), 0) FROM {_POSITIONS}"
    " WHERE mode = :book_mode AND settled_at >= :book_day_start) AS realized_today,"
    f" {_equity()} AS latest,"
    f" {_equity(' AND taken_at < :book_day_start')} AS opening,"
    f" (SELECT max(equity) FROM {_SNAPSHOTS} WHERE mode = :book_mode) AS best,"
    f" (SELECT max(decided_at) FROM {_DECISIONS}"
    " WHERE mode = :book_mode AND market_id = :book_market AND approved) AS last_approval,"
    f" (SELECT amount FROM {_EXPOSURE} WHERE mode = :book_mode AND market_id = :book_market) AS market_exposure,"
    f" (SELECT amount FROM {_EXPOSURE} WHERE mode = :book_mode AND market_id = :book_total) AS total"
)
# On PostgreSQL the read is a prepared statement of each connection, so its ten subqueries are
# planned once per connection instead of on every review (~0.4-0.7 ms of a review's time;
# psycopg2 never prepares by itself). It is prepared on the connection's first review, in the
# same round trip. A connection whose review failed is discarded (`transaction`), so a statement
# whose plan went stale (a migration changed a column) is prepared again on the next connection.
_READ_NAME = "pmarb_risk_read"
_READ_ARGS = (
    "book_mode", "book_market", "book_request", "book_day_start", "book_total", "book_halt_key", "book_bankroll"
)
_READ_TYPES = ("text", "text", "text", "timestamptz", "text", "text", "numeric")
_PREPARE_READ = f"PREPARE {_READ_NAME} ({', '.join(_READ_TYPES)}) AS " + re.sub(
    r":(\w+)\b", lambda name: f"${_READ_ARGS.index(name.group(1)) + 1}", _READ
)
_EXECUTE_READ = f"EXECUTE {_READ_NAME} ({', '.join(f':{arg}' for arg in _READ_ARGS)})"
# What a statement returns, where the driver alone would not say (SQLite: text for times,
# floats for money; PostgreSQL's statements go on its driver, which says it right).
_READ_RESULTS = {
    "earlier": Integer(), "halt": Text(), "equity": MONEY, "realized_today": MONEY, "latest": MONEY,
    "opening": MONEY, "best": MONEY, "last_approval": UTCDateTime(), "market_exposure": MONEY, "total": MONEY,
}
_RESULTS: Mapping[str, Mapping[str, Any]] = {
    _READ: _READ_RESULTS,
    _EARLIER: {"approved": Boolean(), "reason": String(), "approved_amount": MONEY, "decided_at": UTCDateTime()},
    _LOCK: {"amount": MONEY},
}


@cache
def _clause(sql: str, result_of: str) -> TextClause:
    clause = text(sql).bindparams(*(b for b in _BINDS if re.search(rf":{b.key}\b", sql)))
    return clause.columns(**_RESULTS[result_of]) if result_of in _RESULTS else clause


# The parameters every statement may name whose value never changes (bound by SQLAlchemy's
# clauses; given to the driver with each call's own).
_FIXED = {bind.key: bind.value for bind in _BINDS if bind.value is not None}


@cache
def _one_by_one(dialect: str, parts: tuple[str, ...]) -> tuple[TextClause, ...]:
    """`parts` as SQLAlchemy sends them where the driver takes one statement per call (SQLite)."""
    parts = tuple(
        _BEGIN_ON.get(dialect, part) if part == _BEGIN else part for part in parts if part not in _POSTGRESQL_ONLY
    )
    return tuple(_clause(part, part) for part in parts)


def _send(conn: Connection, parts: tuple[str, ...], params: Mapping[str, Any]) -> Any:
    """Run `parts` in order on `conn` (one round trip on PostgreSQL); the last one's first row, or
    None if it has none."""
    if driver.on_driver(conn):
        return driver.run(conn, "; ".join(parts), _FIXED | dict(params))
    result = None
    for clause in _one_by_one(conn.dialect.name, parts):
        result = conn.execute(clause, params)
    return result.first() if result is not None and result.returns_rows else None


class Reading(NamedTuple):
    """What one read of the book found: the request's earlier decision (its id), or the state."""

    earlier_decision: int | None
    state: RiskState


@contextmanager
def transaction(conn: Connection) -> Iterator[None]:
    """Where `open_review` begins a transaction on an autocommit connection.

    Left open without an error (a redelivered request, answered from its earlier decision): rolled
    back. Any error between BEGIN and COMMIT: the connection is discarded, which ends the
    transaction on the server, whatever state the connection is in; it is never handed on to the
    pool with a transaction (and the mode's lock) still open, nor with a prepared read that
    failed.
    """
    try:
        yield
    except BaseException:
        conn.invalidate()
        raise
    if _in_transaction(conn):
        conn.exec_driver_sql("ROLLBACK")


def _in_transaction(conn: Connection) -> bool:
    if conn.invalidated or conn.closed:
        return False
    driver = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        return bool(driver.info.transaction_status)  # type: ignore[union-attr]  # psycopg2: 0 is idle
    return bool(driver.in_transaction)  # type: ignore[union-attr]


def open_review(
    conn: Connection, mode: str, market_id: str, request_id: str, bankroll: Decimal, now: datetime
) -> Reading:
    """Begin the review's transaction, take the mode's lock and read the book (under `transaction`).

    The lock creates the total row when it is missing (on first use, or if someone deleted it), so
    it always locks one. Deciding that from the read instead would be a race: a total row that
    another review creates and commits between our lock (which found nothing) and our read would
    be read, but not locked.
    """
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    params = {"book_mode": mode, "book_market": market_id, "book_request": request_id, "book_now": now,
              "book_day_start": day_start, "book_bankroll": bankroll}
    row = _send(conn, (_BEGIN, _LOCK, *_read(conn)), params)
    return Reading(row.earlier, _state_from(row, bankroll))


def _read(conn: Connection) -> tuple[str, ...]:
    """The read as this connection runs it: prepared on PostgreSQL (preparing it the first time)."""
    if conn.dialect.name != "postgresql":
        return (_READ,)
    if conn.connection.info.get(_READ_NAME):
        return (_EXECUTE_READ,)
    conn.connection.info[_READ_NAME] = True  # if this review fails, the connection is discarded
    return (_PREPARE_READ, _EXECUTE_READ)


def earlier_decision(conn: Connection, request_id: str) -> Any:
    """The decision recorded for a request (approved, reason, approved_amount, decided_at)."""
    return _send(conn, (_EARLIER,), {"book_request": request_id})


def close_review(conn: Connection, mode: str, request: TradeRequest, verdict: Verdict, now: datetime) -> None:
    """Reserve what was approved, record the decision, halt on a breach, and commit: one trip."""
    parts: tuple[str, ...] = (() if verdict.breach else (_NO_FLUSH_WAIT,)) + ((_MOVE,) if verdict.approved else ())
    parts += (_DECIDE,)
    params = {
        "book_mode": mode, "book_market": request.market_id, "book_request": request.request_id, "book_now": now,
        "book_delta": verdict.amount, "book_outcome": request.outcome.value, "book_approved": verdict.approved,
        "book_reason": verdict.reason[:200], "book_requested": request.amount, "book_approved_amount": verdict.amount,
    }
    if verdict.breach:
        parts += (WRITE_HALT_SQL,)
        params |= halt_params(True, verdict.reason, now)
    _send(conn, (*parts, _COMMIT), params)


def lock_total(session: Session, mode: str, now: datetime) -> Decimal:
    """Take the mode's exclusive lock for the rest of the session's transaction (settlements);
    returns the total exposure."""
    dialect = session.get_bind().dialect.name
    if dialect in _BEGIN_ON and not session.connection().connection.driver_connection.in_transaction:
        session.execute(text(_BEGIN_ON[dialect]))
    return session.execute(_clause(_LOCK, _LOCK), {"book_mode": mode, "book_now": now}).scalar_one()


def add_exposure(session: Session, mode: str, market_id: str, delta: Decimal, now: datetime) -> None:
    """Move the market's and the total's exposure by `delta` (negative = release). Call under the lock."""
    params = {"book_mode": mode, "book_market": market_id, "book_delta": delta, "book_now": now}
    session.execute(_clause(_MOVE, _MOVE), params)


def _state_from(row: Any, bankroll: Decimal) -> RiskState:
    halt = halt_from(row.halt)
    equity = row.equity
    peak = max(bankroll, equity, row.best or ZERO)
    # Daily P&L: realized today, or the equity change since the day began when snapshots say worse.
    daily_pnl = row.realized_today
    if row.opening is not None and row.latest is not None:
        daily_pnl = min(daily_pnl, row.latest - row.opening)
    return RiskState(
        halted=halt.halted,
        halt_reason=halt.reason,
        market_exposure=row.market_exposure if row.market_exposure is not None else ZERO,
        total_exposure=row.total,
        daily_pnl=daily_pnl,
        equity=equity,
        peak_equity=peak,
        last_approval_at=row.last_approval,
    )
