"""Beat-driven venue upkeep: order reconciliation and the position check (live), settlement and
equity snapshots (both modes).

Each run is skipped while the previous one still holds its lock, so a slow venue never stacks
runs on top of each other; the lock expires on its own if a worker dies holding it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pm_arb_tasks.celery_app import app
from pm_arb_tasks.failures import outage_skips
from pm_arb_tasks.services import positions, reconcile
from pm_arb_tasks.services.execution import current_venue
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.redis_client import get_redis

if TYPE_CHECKING:  # py-clob-client-v2 (and its Ethereum stack) only in processes that trade live
    from pm_arb_tasks.adapters.polymarket.live import LiveVenue

log = logging.getLogger(__name__)
LOCK_KEY = "pm_arb:lock:ops:{name}"
LOCK_SECONDS = 25  # above the ops tasks' 20 s soft time limit


@contextmanager
def single_run(name: str) -> Iterator[bool]:
    key = LOCK_KEY.format(name=name)
    token = datetime.now(UTC).isoformat()
    acquired = bool(get_redis().set(key, token, nx=True, ex=LOCK_SECONDS))
    try:
        yield acquired
    finally:
        if acquired and get_redis().get(key) == token:
            get_redis().delete(key)


def _live_venue() -> LiveVenue:
    from pm_arb_tasks.adapters.polymarket.live import LiveVenue

    venue = current_venue()
    if not isinstance(venue, LiveVenue):
        raise RuntimeError("live-mode upkeep needs the live venue")
    return venue


@app.task(name="pm_arb.ops.reconcile")
def reconcile_orders() -> dict[str, int] | None:
    if get_settings().paper_trading:
        return None
    with outage_skips(log, "reconciliation"), single_run("reconcile") as mine:
        if not mine:
            log.info("reconcile: previous run still going, skipped")
            return None
        return asdict(reconcile.run(_live_venue(), datetime.now(UTC)))
    return None


@app.task(name="pm_arb.ops.check_positions")
def check_positions() -> int | None:
    if get_settings().paper_trading:
        return None
    with outage_skips(log, "position check"), single_run("check_positions") as mine:
        if not mine:
            return None
        return len(positions.check_against_venue(_live_venue(), datetime.now(UTC)))
    return None


@app.task(name="pm_arb.ops.settle")
def settle() -> int | None:
    with outage_skips(log, "settlement"), single_run("settle") as mine:
        return positions.settle_resolved(datetime.now(UTC)) if mine else 0
    return None


@app.task(name="pm_arb.ops.snapshot_equity")
def snapshot_equity() -> str | None:
    settings = get_settings()
    with outage_skips(log, "equity snapshot"):
        return str(positions.snapshot_equity(settings.trading_mode, settings.initial_bankroll, datetime.now(UTC)))
    return None
