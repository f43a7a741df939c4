"""The durable halt flag (DESIGN.md invariant 3).

It lives in the database, not in Redis: Redis may restart empty, and a restarted executor must
still see the halt. The executor reads it immediately before every order, in one autocommit
statement; a database it cannot read counts as halted (fail closed). The risk guardian reads it
inside its locked transaction and sets it there on a loss-limit breach (`write_halt`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import SystemStateRow
from pm_arb_tasks.db.session import autocommit, session_scope

HALT_KEY = "halt"
HALT_ROW = select(SystemStateRow.value, SystemStateRow.updated_at).where(SystemStateRow.key == HALT_KEY)


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


def read_halt(session: Session) -> HaltState:
    row = session.execute(HALT_ROW).first()
    return halt_from(*row) if row is not None else HaltState(False)


def is_halted(held: Connection | None = None) -> bool:
    """`held`: an autocommit connection to read on (see `session.autocommit`)."""
    try:
        with autocommit(held) as conn:
            row = conn.execute(HALT_ROW).first()
        return halt_from(*row).halted if row is not None else False
    except Exception:  # an unreadable flag means we cannot prove we may trade
        return True


def write_halt(session: Session, halted: bool, reason: str, now: datetime) -> HaltState:
    """Set or clear the flag in the caller's transaction; `now` becomes the state's `since`."""
    value = json.dumps({"halted": halted, "reason": reason})
    row = session.get(SystemStateRow, HALT_KEY)
    if row is None:
        session.add(SystemStateRow(key=HALT_KEY, value=value, updated_at=now))
    else:
        row.value = value
        row.updated_at = now
    return HaltState(halted, reason, now)


def set_halt(halted: bool, reason: str) -> HaltState:
    with session_scope() as session:
        return write_halt(session, halted, reason, datetime.now(UTC))
