"""Alerts: every alert is recorded first (idempotent by alert id), then delivered off the
trading path.

`raise_alert` only writes a row and enqueues `pm_arb.alert.send` with the alert id (never a
secret: Flower shows task arguments), so a slow or failing Pushover can never delay an order.
Without Pushover keys the row is marked `logged` and nothing is sent. A burst of identical
alerts (same `dedupe_key`, or same kind + title + message) within `COLLAPSE_WINDOW_SECONDS`
is sent once; the others are recorded as `collapsed`. Each row keeps its delivery status,
attempts and error, so `SELECT * FROM alerts` tells what the phone got.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from pm_arb_tasks.adapters.pushover import PushoverClient, PushoverMessage
from pm_arb_tasks.db.models import AlertRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import ExecutionResult, TradeStatus
from pm_arb_tasks.security import redact
from pm_arb_tasks.settings import Settings, get_settings
from pm_arb_tasks.state.redis_client import get_redis

log = logging.getLogger(__name__)

LOWEST, LOW, NORMAL, HIGH, CRITICAL = -2, -1, 0, 1, 2
COLLAPSE_WINDOW_SECONDS = 60
LARGE_LOSS_USD = Decimal(20)
SEND_TASK = "pm_arb.alert.send"
BURST_KEY = "pm_arb:alert:burst:{digest}"
ALERT_ID_LEN, KIND_LEN, TITLE_LEN, DEDUPE_KEY_LEN = 60, 40, 250, 120  # the alerts table's columns
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1}


class Delivery(StrEnum):
    PENDING = "pending"  # recorded, waiting for the alert worker
    SENDING = "sending"  # claimed by one delivery attempt
    SENT = "sent"
    LOGGED = "logged"  # no Pushover keys: recorded and logged only
    FAILED = "failed"
    COLLAPSED = "collapsed"  # part of a burst already sent


@dataclass(frozen=True)
class AlertStatus:
    alert_id: str
    delivery: Delivery
    attempts: int = 0
    error: str | None = None


class BurstStore(Protocol):
    """The two Redis commands the burst gate needs (redis.Redis satisfies it)."""

    def set(self, name: str, value: str, *, nx: bool = ..., ex: int = ...) -> bool | None: ...

    def get(self, name: str) -> str | None: ...


def burst_key(*, kind: str, title: str, message: str, dedupe_key: str | None = None) -> str:
    """Alerts with the same key within the window are one burst."""
    identity = f"key\0{dedupe_key}" if dedupe_key else f"text\0{kind}\0{title.strip()}\0{message.strip()}"
    return BURST_KEY.format(digest=hashlib.sha256(identity.encode()).hexdigest()[:32])


def first_of_burst(store: BurstStore, key: str, alert_id: str, window: int = COLLAPSE_WINDOW_SECONDS) -> bool:
    """True for the alert that opens a burst; the same alert asking again (a retry) stays first."""
    if store.set(key, alert_id, nx=True, ex=window):
        return True
    return store.get(key) == alert_id


def pushover_configured(settings: Settings) -> bool:
    return bool(settings.pushover_user_key.get_secret_value() and settings.pushover_api_token.get_secret_value())


def record_alert(
    *,
    kind: str,
    priority: int,
    title: str,
    message: str,
    alert_id: str | None = None,
    dedupe_key: str | None = None,
    collapse: bool = True,
    sent: bool = False,
) -> AlertStatus:
    """Write the alert row once; its delivery says what happens next (pending, logged, collapsed).
    `sent` records one already delivered without a row (during a database outage) as sent.

    Text is masked (`redact`) and cut to the column sizes: an alert goes to a phone, and a caller's
    overlong title must not become a database error that its task retries forever.
    """
    alert_id = _fit(alert_id or uuid.uuid4().hex, ALERT_ID_LEN)
    kind, title, message = kind[:KIND_LEN], redact(title)[:TITLE_LEN], redact(message)
    dedupe_key = _fit(dedupe_key, DEDUPE_KEY_LEN) if dedupe_key else None
    existing = alert_status(alert_id)
    if existing is not None:
        return existing
    key = burst_key(kind=kind, title=title, message=message, dedupe_key=dedupe_key)
    if sent:
        delivery = Delivery.SENT
    elif collapse and not _opens_burst(key, alert_id):
        delivery = Delivery.COLLAPSED
    else:
        delivery = Delivery.PENDING if pushover_configured(get_settings()) else Delivery.LOGGED
    try:
        with session_scope() as session:
            session.add(
                AlertRow(
                    alert_id=alert_id, kind=kind, priority=priority, title=title, message=message,
                    dedupe_key=dedupe_key, delivery=delivery.value,
                    delivered_at=datetime.now(UTC) if sent else None, attempts=1 if sent else 0,
                )
            )
    except IntegrityError:  # a concurrent delivery of the same alert recorded it first
        return alert_status(alert_id) or AlertStatus(alert_id, delivery)
    log.info("alert %s [%s p%d, %s] %s: %s", alert_id, kind, priority, delivery.value, title, message)
    return AlertStatus(alert_id, delivery)


def _fit(value: str, limit: int) -> str:
    """Deterministic, so an overlong id still identifies the same alert on every call."""
    if len(value) <= limit:
        return value
    return f"{value[: limit - 17]}-{hashlib.sha256(value.encode()).hexdigest()[:16]}"


def _opens_burst(key: str, alert_id: str) -> bool:
    """Redis makes the gate atomic across workers; without Redis we send rather than drop."""
    try:
        return first_of_burst(get_redis(), key, alert_id)
    except RedisError as exc:
        log.warning("alert burst check unavailable (%s); not collapsing", exc)
        return True


def raise_alert(
    *,
    kind: str,
    priority: int,
    title: str,
    message: str,
    alert_id: str | None = None,
    dedupe_key: str | None = None,
) -> str:
    """Record the alert and hand its delivery to the alert queue; returns the alert id.

    A second call with the same `alert_id` records nothing new; if the first call's row is still
    pending it is enqueued again, which is harmless because delivery claims the row.
    """
    status = record_alert(
        kind=kind, priority=priority, title=title, message=message, alert_id=alert_id, dedupe_key=dedupe_key
    )
    if status.delivery is Delivery.PENDING:
        _enqueue(status.alert_id)
    return status.alert_id


def _enqueue(alert_id: str) -> None:
    from pm_arb_tasks.celery_app import app

    try:
        app.send_task(SEND_TASK, args=[alert_id], retry=True, retry_policy=PUBLISH_RETRY)
    except Exception as exc:  # the row is recorded; a broker outage must not fail the caller
        log.error("alert %s recorded but not queued for delivery: %s", alert_id, exc)


def alert_status(alert_id: str) -> AlertStatus | None:
    with session_scope() as session:
        row = session.scalar(select(AlertRow).where(AlertRow.alert_id == alert_id))
        return _status(row) if row is not None else None


def _status(row: AlertRow) -> AlertStatus:
    return AlertStatus(row.alert_id, Delivery(row.delivery), row.attempts, row.error)


def recent_alerts(limit: int) -> list[AlertRow]:
    with session_scope() as session:
        return list(
            session.scalars(select(AlertRow).order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(limit))
        )


def deliver(alert_id: str) -> AlertStatus | None:
    """Send one pending alert to Pushover and record the outcome; any other state is left alone.

    The pending -> sending claim is one conditional UPDATE, so a redelivered task never sends twice.
    """
    with session_scope() as session:
        claimed = session.execute(
            update(AlertRow)
            .where(AlertRow.alert_id == alert_id, AlertRow.delivery == Delivery.PENDING.value)
            .values(delivery=Delivery.SENDING.value)
        ).rowcount
        row = session.scalar(select(AlertRow).where(AlertRow.alert_id == alert_id))
    if row is None:
        log.warning("alert %s not found; nothing to deliver", alert_id)
        return None
    if not claimed:
        return _status(row)
    if not pushover_configured(get_settings()):
        return _finish(alert_id, Delivery.LOGGED, attempts=0, error=None)
    result = _pushover().send(PushoverMessage(title=row.title, message=row.message, priority=row.priority))
    return _finish(alert_id, Delivery.SENT if result.delivered else Delivery.FAILED, result.attempts, result.error)


def _pushover() -> PushoverClient:
    settings = get_settings()
    return PushoverClient(
        settings.pushover_api_url,
        settings.pushover_api_token.get_secret_value(),
        settings.pushover_user_key.get_secret_value(),
    )


def send_unrecorded(*, priority: int, title: str, message: str) -> bool:
    """Tell the operator while the database (where alerts are recorded) is unreachable: straight
    to Pushover, or a critical log line without keys. The caller records it once the database is back."""
    log.critical("alert (database unreachable, not recorded yet): %s: %s", title, message)
    if not pushover_configured(get_settings()):
        return False
    return _pushover().send(PushoverMessage(title=title, message=redact(message), priority=priority)).delivered


def record_unrecorded(*, alert_id: str, kind: str, priority: int, title: str, message: str, delivered: bool) -> str:
    """Once the database answers again, record an alert `send_unrecorded` handled during the outage.

    One Pushover accepted is recorded as sent and never sent again (one phone notification per
    incident); one it did not (no keys, or a failed send) is raised the normal way now.
    """
    if not delivered:
        return raise_alert(kind=kind, priority=priority, title=title, message=message, alert_id=alert_id)
    return record_alert(
        kind=kind, priority=priority, title=title, message=message, alert_id=alert_id, collapse=False, sent=True
    ).alert_id


def _finish(alert_id: str, delivery: Delivery, attempts: int, error: str | None) -> AlertStatus:
    with session_scope() as session:
        row = session.scalar(select(AlertRow).where(AlertRow.alert_id == alert_id).with_for_update())
        row.delivery = delivery.value
        row.attempts += attempts
        row.error = error
        if delivery is Delivery.SENT:
            row.delivered_at = datetime.now(UTC)
        status = _status(row)
    log.info("alert %s %s after %d attempt(s)", alert_id, delivery.value, attempts)
    return status


def send_test_alert() -> AlertStatus:
    """`pm-arb alert --test`: one alert recorded and delivered synchronously, never collapsed."""
    now = datetime.now(UTC)
    status = record_alert(
        kind="test", priority=NORMAL, title="pm-arb test alert",
        message=f"Test alert from {socket.gethostname()} at {now:%Y-%m-%d %H:%M:%S} UTC", collapse=False,
    )
    return deliver(status.alert_id) or status


# The alerts of the plan. Alert ids are derived from what happened, so a redelivered task or a
# second caller for the same event never alerts twice.

_OUTCOME_ALERTS = {
    TradeStatus.FILLED: ("trade_executed", NORMAL, "Trade executed"),
    TradeStatus.PARTIAL: ("trade_executed", NORMAL, "Trade partly filled"),
    TradeStatus.PENDING: ("trade_pending", NORMAL, "Order resting at the venue"),
    TradeStatus.FAILED: ("trade_failed", HIGH, "Trade failed"),
    TradeStatus.UNKNOWN: ("trade_unknown", HIGH, "Order outcome unknown"),
    TradeStatus.REJECTED: ("trade_rejected", LOW, "Trade not placed"),
}


def expected_pnl(result: ExecutionResult) -> Decimal | None:
    """P&L at fair value for a fill (shares * fair - cost - fee); None when fair value is unknown."""
    fair = result.request.fair_value
    if result.fill_price is None or fair is None:
        return None
    return result.filled_amount * fair - result.cost - result.fee


def alert_for_outcome(result: ExecutionResult) -> None:
    """One alert per (trade, status): a redelivered outcome does not alert twice."""
    kind, priority, title = _OUTCOME_ALERTS[result.status]
    request = result.request
    what = f"{request.side.value} {request.outcome.value} {request.market_id[:12]}"
    if result.fill_price is not None:
        detail = f"{what}: {result.filled_amount} @ {result.fill_price:.4f}, fee {result.fee:.4f}"
        pnl = expected_pnl(result)
        if pnl is not None:
            detail += f", expected P&L {pnl:+.2f} USD"
    else:
        detail = f"{what}: {result.error_message or result.status.value}"
    raise_alert(
        kind=kind, priority=priority, title=title, message=f"{detail} ({result.mode}, {result.trade_id[:14]})",
        alert_id=f"{result.trade_id}-{result.status.value}",
    )


def alert_if_large_loss(*, ref: str, what: str, pnl: Decimal) -> bool:
    """At settlement: a realized loss above $20 on one trade or position is a high alert, once per `ref`."""
    if pnl >= -LARGE_LOSS_USD:
        return False
    raise_alert(
        kind="large_loss", priority=HIGH, title="Large loss",
        message=f"{what} lost {-pnl:.2f} USD (more than {LARGE_LOSS_USD} USD)", alert_id=f"loss-{ref}",
    )
    return True


def alert_stack_started(host: str, mode: str) -> None:
    raise_alert(
        kind="stack_started", priority=NORMAL, title="pm-arb started",
        message=f"scheduler started on {host} ({mode} trading)",
    )
