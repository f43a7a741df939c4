"""The durable halt flag (DESIGN.md invariant 3).

It lives in the database, not in Redis: Redis may restart empty, and a restarted executor must
still see the halt. The executor reads it with the last statement before every order (its claim,
or its signed order's record, returns it: db/claims.py); a flag that cannot be read or decoded
counts as halted (fail closed). The risk guardian reads it inside its locked transaction and sets
it there on a loss-limit breach (`WRITE_HALT_SQL`, sent with the breaching decision).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Text, bindparam, select, text
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import SystemStateRow, UTCDateTime
from pm_arb_tasks.db.session import autocommit, session_scope

HALT_KEY = "halt"
HALT_ROW = select(SystemStateRow.value, SystemStateRow.updated_at).where(SystemStateRow.key == HALT_KEY)
# The write as SQL text, so the risk book can send it in the same round trip as the decision
# that breached a limit (risk/book.py); `write_halt` runs the same statement on its own.
HALT_BINDS = (
    bindparam("halt_key", HALT_KEY, type_=Text()),
    bindparam("halt_value", type_=Text()),
    bindparam("halt_now", type_=UTCDateTime()),
)
WRITE_HALT_SQL = (
    f"INSERT INTO {SystemStateRow.__tablename__} (key, value, updated_at) VALUES (:halt_key, :halt_value, :halt_now)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
)
_WRITE_HALT = text(WRITE_HALT_SQL).bindparams(*HALT_BINDS)


@dataclass(frozen=True)
class HaltState:
    halted: bool
    reason: str = ""
    since: datetime | None = None


def halt_from(value: str | None, since: datetime | None = None) -> HaltState:
    """The flag from its stored value (None: never set); every reader decodes it here alike."""
    if value is None:
        return HaltState(False)
    data = json.loads(value)
    return HaltState(bool(data.get("halted")), data.get("reason", ""), since)


def halts_trading(value: str | None) -> bool:
    """Whether a stored flag stops orders; one that cannot be decoded does (fail closed)."""
    try:
        return halt_from(value).halted
    except (ValueError, TypeError, AttributeError):
        return True


def read_halt(session: Session) -> HaltState:
    row = session.execute(HALT_ROW).first()
    return halt_from(*row) if row is not None else HaltState(False)


def is_halted() -> bool:
    """The flag on its own (start-up, status); the executor's order path reads it with its claim."""
    try:
        with autocommit() as conn:
            row = conn.execute(HALT_ROW).first()
    except Exception:  # an unreadable flag means we cannot prove we may trade
        return True
    return halts_trading(row.value) if row is not None else False


def halt_params(halted: bool, reason: str, now: datetime) -> dict[str, object]:
    """The parameters of WRITE_HALT_SQL; `now` becomes the state's `since`."""
    return {"halt_value": json.dumps({"halted": halted, "reason": reason}), "halt_now": now}


def write_halt(session: Session, halted: bool, reason: str, now: datetime) -> HaltState:
    """Set or clear the flag in the caller's transaction; `now` becomes the state's `since`."""
    session.execute(_WRITE_HALT, halt_params(halted, reason, now))
    return HaltState(halted, reason, now)


def set_halt(halted: bool, reason: str) -> HaltState:
    with session_scope() as session:
        return write_halt(session, halted, reason, datetime.now(UTC))
