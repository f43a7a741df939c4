"""Operator-area test support: its Redis databases and made-up Pushover keys.

Modules of the area run one after another, so each takes one database of the three:
alerts and watchdog 13, report 14, Flower and the `pm-arb up` stack 15.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from pm_arb_tasks.celery_app import QUEUES
from pm_arb_tasks.db.models import AlertRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.services import watchdog
from pm_arb_tasks.state.market_data import mark_poll

REDIS_DBS = (13, 14, 15)
STACK_REDIS_DB = REDIS_DBS[2]
OTHER_QUEUES = ",".join(q for q in QUEUES if q != "execute")  # one worker for all but the executor's
PUSHOVER_TOKEN = "atesttoken0123456789abcdefghij"  # 30 characters, like a real one
PUSHOVER_USER = "utestuser0123456789abcdefghijk"


def watchdog_pass() -> list[watchdog.AlertSpec]:
    """One pass with fresh market data, so only the workers (and the database) are under test."""
    now = datetime.now(UTC)
    mark_poll("oracle", now)
    mark_poll("books", now)
    return watchdog.run()


def alert_rows() -> list[AlertRow]:
    with session_scope() as session:
        return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))
