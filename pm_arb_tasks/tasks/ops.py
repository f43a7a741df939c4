"""Operator tasks: the watchdog, the scheduled summaries and alert delivery.

All of them are thin: one service call each. `pm_arb.alert.send` carries only an alert id, so
Flower never shows a message body or a credential; it acks early (a lost delivery leaves the
row `pending` or `sending`, visible in the alerts table) and may run longer than the broker's
visibility timeout while Pushover backs off, without being redelivered. A database outage is
retried with capped backoff, like persist's.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pm_arb_tasks.celery_app import STACK_STARTED_TASK, app
from pm_arb_tasks.failures import OUTAGES
from pm_arb_tasks.services import alerts, reporting, watchdog
from pm_arb_tasks.tasks.pipeline import DB_RETRY

log = logging.getLogger(__name__)


@app.task(name="pm_arb.ops.watchdog", soft_time_limit=20, time_limit=25)
def watchdog_pass() -> None:
    raised = watchdog.run()
    if raised:
        log.info("watchdog raised %d alert(s): %s", len(raised), ", ".join(a.title for a in raised))


# Summaries run once a day or an hour: a store outage retries them for a few minutes (each
# countdown well inside the broker's visibility timeout) instead of losing that day's summary.
OUTAGE_RETRY = {"autoretry_for": OUTAGES, "retry_backoff": 2, "retry_backoff_max": 10, "max_retries": 30}


@app.task(name="pm_arb.ops.daily_summary", **OUTAGE_RETRY)
def daily_summary() -> None:
    reporting.send_daily_summary(datetime.now(UTC))


@app.task(name="pm_arb.ops.hourly_opportunities", **OUTAGE_RETRY)
def hourly_opportunities() -> None:
    reporting.send_hourly_opportunities(datetime.now(UTC))


# Persist's retry policy, with time for Pushover's own backoff (this task acks early, so running
# past the visibility timeout does not redeliver it).
@app.task(name=alerts.SEND_TASK, **{**DB_RETRY, "soft_time_limit": 45, "time_limit": 50})
def send_alert(alert_id: str) -> None:
    """Retried while the database is away: the row stays `pending` until a delivery claims it, so
    an outage only delays the notification (and a retry after the claim never sends twice)."""
    alerts.deliver(alert_id)


@app.task(name=STACK_STARTED_TASK, **OUTAGE_RETRY)
def stack_started(host: str, mode: str) -> None:
    """Asked for by beat as it starts (`celery_app._announce_start`); recorded here, as beat holds
    no database layer."""
    alerts.alert_stack_started(host, mode)
