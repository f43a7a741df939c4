"""The periodic schedule, loaded by `pm_arb_tasks.celery_app`; beat is the only scheduler.

Every entry expires after roughly one period: a poll that could not run on time is worthless,
so a backlog is dropped instead of firing a burst when a worker comes back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celery.schedules import crontab

if TYPE_CHECKING:  # the app imports this module while the package is still initialising
    from pm_arb_tasks.settings import Settings


EQUITY_SNAPSHOT_SECONDS = 30  # how fresh the guardian's view of open gains and losses is


def _every(seconds: float, task: str, expires: float | None = None) -> dict[str, Any]:
    return {"task": task, "schedule": seconds, "options": {"expires": expires or seconds}}


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    schedule = {
        "oracle-poll": _every(settings.oracle_poll_seconds, "pm_arb.oracle.poll"),
        "markets-discover": _every(settings.market_poll_seconds, "pm_arb.markets.discover"),
        "markets-books": _every(settings.book_poll_seconds, "pm_arb.markets.poll_books"),
        "watchdog": _every(30, "pm_arb.ops.watchdog"),
        "settle-resolved": _every(60, "pm_arb.ops.settle"),
        "equity-snapshot": _every(EQUITY_SNAPSHOT_SECONDS, "pm_arb.ops.snapshot_equity"),
        "hourly-opportunities": {
            "task": "pm_arb.ops.hourly_opportunities",
            "schedule": crontab(minute=0),
            "options": {"expires": 600},
        },
        "daily-summary": {
            "task": "pm_arb.ops.daily_summary",
            "schedule": crontab(minute=0, hour=0),
            "options": {"expires": 3600},
        },
    }
    if not settings.paper_trading:
        schedule["reconcile-orders"] = _every(10, "pm_arb.ops.reconcile")
        schedule["reconcile-positions"] = _every(10, "pm_arb.ops.check_positions")
    return schedule
