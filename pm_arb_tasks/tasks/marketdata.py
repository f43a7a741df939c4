"""Market-data tasks: thin wrappers that read the clock and call one service.

The oracle poll hands the symbols that moved, with their ticks, to the scanner by task name
(`pm_arb.scan.symbols`), so this module never imports the strategy code; the use case sends it
before it stores the ticks, so the scan never waits on bookkeeping. The scan message
expires with the trade TTL: a scan of a tick older than that could only produce requests that
are already past their deadline. A poll that meets a store outage (Redis restarting, the
database away) is skipped in one line: the next one is a second away, and the data it would
have stored would be stale by then anyway.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pm_arb_tasks.celery_app import app
from pm_arb_tasks.domain.models import Tick
from pm_arb_tasks.failures import outage_skips
from pm_arb_tasks.services import marketdata
from pm_arb_tasks.settings import get_settings

log = logging.getLogger(__name__)
SCAN_TASK = "pm_arb.scan.symbols"


def utcnow() -> datetime:
    return datetime.now(UTC)


@app.task(name="pm_arb.oracle.poll", soft_time_limit=10, time_limit=12)
def poll_oracles() -> list[str] | None:
    now = utcnow()

    def scan(moved: list[Tick]) -> None:
        symbols = [tick.symbol for tick in moved]
        app.send_task(
            SCAN_TASK,
            args=[symbols],
            kwargs={"tick_at": now.isoformat(), "ticks": [tick.model_dump(mode="json") for tick in moved]},
            expires=get_settings().trade_ttl_seconds,
            # what Flower and the log show, instead of a repr Celery would build while publishing
            argsrepr=repr([symbols]),
            kwargsrepr=", ".join(f"{tick.symbol} {tick.price} ({tick.provider})" for tick in moved),
        )

    with outage_skips(log, "oracle poll"):
        return marketdata.poll_oracles(now, send=scan)
    return None


@app.task(name="pm_arb.markets.discover")
def discover_markets() -> dict[str, object] | None:
    with outage_skips(log, "market discovery"):
        return marketdata.discover_markets(utcnow()).as_dict()
    return None


@app.task(name="pm_arb.markets.poll_books", soft_time_limit=10, time_limit=12)
def poll_books() -> int | None:
    with outage_skips(log, "book poll"):
        return marketdata.poll_books(utcnow())
    return None
