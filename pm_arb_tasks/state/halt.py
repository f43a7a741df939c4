"""The durable halt flag (DESIGN.md invariant 3).

It lives in the database, not in Redis: Redis may restart empty, and a restarted executor must
still see the halt. The executor reads it immediately before every order; a database it cannot
read counts as halted (fail closed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pm_arb_tasks.db.models import SystemStateRow
from pm_arb_tasks.db.session import session_scope

HALT_KEY = "halt"


@dataclass(frozen=True)
class HaltState:
    halted: bool
    reason: str = ""
    since: datetime | None = None


def read_halt(session: Session) -> HaltState:
    row = session.scalar(select(SystemStateRow).where(SystemStateRow.key == HALT_KEY))
    if row is None:
        return HaltState(False)
    data = json.loads(row.value)
    return HaltState(bool(data.get("halted")), data.get("reason", ""), row.updated_at)


def is_halted() -> bool:
    try:
        with session_scope() as session:
            return read_halt(session).halted
    except Exception:  # an unreadable flag means we cannot prove we may trade
        return True


def set_halt(halted: bool, reason: str) -> HaltState:
    now = datetime.now(UTC)
    value = json.dumps({"halted": halted, "reason": reason})
    with session_scope() as session:
        row = session.get(SystemStateRow, HALT_KEY)
        if row is None:
            session.add(SystemStateRow(key=HALT_KEY, value=value, updated_at=now))
        else:
            row.value = value
            row.updated_at = now
    return HaltState(halted, reason, now)
