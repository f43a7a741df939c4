"""Alerts end to end against the simulator's Pushover endpoint: recorded, queued, delivered by a
real alert worker. Payload and priority as Pushover expects them, 429/5xx retried, a burst
collapsed into one message, nothing sent without keys, and the keys never in a log or an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

import pm_arb_tasks.cli.operator  # noqa: F401 - registers the operator commands on the group
from pm_arb_tasks.cli.app import cli
from pm_arb_tasks.db.models import AlertRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.services import alerts
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.sim.server import SimServer, running_sim
from pm_arb_tasks.state.redis_client import get_redis
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.ops import PUSHOVER_TOKEN, PUSHOVER_USER, REDIS_DBS
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
REDIS_DB = REDIS_DBS[0]
PUSHOVER_ENV = ("PUSHOVER_API_URL", "PUSHOVER_USER_KEY", "PUSHOVER_API_TOKEN")


class Pushover:
    """The simulator's Pushover side as the tests see it: what arrived, and faults to inject."""

    def __init__(self, sim: SimServer) -> None:
        self.url = sim.url
        self.since = 0

    def messages(self) -> list[dict]:
        """Messages accepted since the last `reset`, in arrival order."""
        log = requests.get(f"{self.url}/sim/log", params={"kind": "alert", "since": self.since}, timeout=5).json()
        return log["entries"]

    def fail_next(self, times: int, status: int = 503, **fault: object) -> None:
        body = {"service": "pushover", "status": status, "times": times, **fault}
        requests.post(f"{self.url}/sim/fault", json=body, timeout=5).raise_for_status()

    def reset(self) -> None:
        requests.delete(f"{self.url}/sim/fault", params={"service": "pushover"}, timeout=5).raise_for_status()
        log = requests.get(f"{self.url}/sim/log", params={"kind": "alert", "since": 0}, timeout=5).json()
        self.since = log["last_seq"]


@pytest.fixture(scope="module")
def pushover() -> Iterator[Pushover]:
    saved = {name: os.environ.get(name, "") for name in PUSHOVER_ENV}
    try:
        yield from _alert_stack()
    finally:  # later modules must not inherit the keys or this module's simulator
        os.environ.update(saved)
        get_settings.cache_clear()


def _alert_stack() -> Iterator[Pushover]:
    with running_sim() as sim, fresh_schema("ops_alerts") as url:
        flush_redis(REDIS_DB)
        env = point_process_at(
            redis_db=REDIS_DB, database_url=url, PUSHOVER_API_URL=sim.url,
            PUSHOVER_USER_KEY=PUSHOVER_USER, PUSHOVER_API_TOKEN=PUSHOVER_TOKEN,
        )
        worker = Worker("alert", "alert", env)
        with running(worker):
            yield Pushover(sim)
        for secret in (PUSHOVER_TOKEN, PUSHOVER_USER):
            assert secret not in worker.log(), "a Pushover key reached the worker log"


@pytest.fixture(autouse=True)
def fresh(pushover: Pushover, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    pushover.reset()
    redis = get_redis()  # forget earlier bursts; the broker's own keys stay
    for key in redis.scan_iter("pm_arb:alert:burst:*"):
        redis.delete(key)
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage()
        assert PUSHOVER_TOKEN not in text and PUSHOVER_USER not in text, "a Pushover key reached a log line"


def row(alert_id: str) -> AlertRow:
    with session_scope() as session:
        return session.scalar(select(AlertRow).where(AlertRow.alert_id == alert_id))


def settled(alert_id: str) -> AlertRow | None:
    current = row(alert_id)
    return current if current.delivery not in ("pending", "sending") else None


def test_alert_arrives_with_pushover_payload(pushover: Pushover) -> None:
    alert_id = alerts.raise_alert(kind="trade_failed", priority=alerts.HIGH, title="Trade failed", message="no fill")
    [message] = wait_for(pushover.messages, timeout=30, what="the message at the simulator")
    # The simulator answers 400 without a token or user key, so acceptance proves both were sent.
    assert (message["title"], message["message"], message["priority"]) == ("Trade failed", "no fill", 1)
    assert message["retry"] is None and message["expire"] is None
    done = wait_for(lambda: settled(alert_id), timeout=10, what="delivery recorded")
    assert (done.delivery, done.attempts, done.error) == ("sent", 1, None)
    assert done.delivered_at is not None


def test_critical_alert_carries_retry_and_expire(pushover: Pushover) -> None:
    alerts.raise_alert(kind="agent_dead", priority=alerts.CRITICAL, title="Queue execute has no consumer", message="x")
    [message] = wait_for(pushover.messages, timeout=30, what="the critical message")
    assert message["priority"] == 2
    assert message["retry"] >= 30 and 0 < message["expire"] <= 10800


def test_429_and_5xx_are_retried_with_backoff(pushover: Pushover) -> None:
    pushover.fail_next(2, status=429)
    alert_id = alerts.raise_alert(kind="test", priority=alerts.NORMAL, title="retry me", message="please")
    done = wait_for(lambda: settled(alert_id), timeout=30, what="delivery after retries")
    assert (done.delivery, done.attempts) == ("sent", 3)
    pushover.fail_next(1, status=500)
    again = alerts.raise_alert(kind="test", priority=alerts.NORMAL, title="retry me", message="again")
    assert (wait_for(lambda: settled(again), timeout=30, what="delivery after a 500").attempts) == 2
    assert [m["message"] for m in pushover.messages()] == ["please", "again"]


def test_persistent_errors_are_recorded_as_failed(pushover: Pushover) -> None:
    pushover.fail_next(4, status=503)
    alert_id = alerts.raise_alert(kind="test", priority=alerts.NORMAL, title="never", message="arrives")
    done = wait_for(lambda: settled(alert_id), timeout=60, what="failure recorded")
    assert (done.delivery, done.attempts) == ("failed", 4)
    assert done.error.startswith("HTTP 503") and pushover.messages() == []


def test_refused_request_is_not_retried(pushover: Pushover) -> None:
    pushover.fail_next(1, status=400)
    alert_id = alerts.raise_alert(kind="test", priority=alerts.NORMAL, title="bad", message="request")
    done = wait_for(lambda: settled(alert_id), timeout=30, what="failure recorded")
    assert (done.delivery, done.attempts) == ("failed", 1) and done.error.startswith("HTTP 400")


def test_keys_echoed_in_an_error_reply_are_masked(pushover: Pushover) -> None:
    echo = {"status": 0, "errors": [f"token {PUSHOVER_TOKEN} for user {PUSHOVER_USER} is invalid"]}
    pushover.fail_next(1, mode="raw", body=json.dumps(echo))
    alert_id = alerts.raise_alert(kind="test", priority=alerts.NORMAL, title="mask", message="keys")
    done = wait_for(lambda: settled(alert_id), timeout=30, what="failure recorded")
    assert done.delivery == "failed" and "token *** for user *** is invalid" in done.error


def test_burst_of_identical_alerts_is_sent_once(pushover: Pushover) -> None:
    ids = [
        alerts.raise_alert(kind="agent_dead", priority=alerts.CRITICAL, title="Queue risk has no consumer",
                           message="No worker consumes risk")
        for _ in range(6)
    ]
    rows = [wait_for(lambda i=i: settled(i), timeout=30, what="burst settled") for i in ids]
    assert sorted(r.delivery for r in rows) == ["collapsed"] * 5 + ["sent"]
    assert rows[0].delivery == "sent"
    assert len(pushover.messages()) == 1
    # A different alert in the same minute is not part of the burst.
    other = alerts.raise_alert(kind="agent_dead", priority=alerts.CRITICAL, title="Queue scan has no consumer",
                               message="No worker consumes scan")
    assert wait_for(lambda: settled(other), timeout=30, what="other alert").delivery == "sent"


def test_same_alert_id_records_and_sends_once(pushover: Pushover) -> None:
    for _ in range(3):
        alerts.raise_alert(kind="trade_executed", priority=0, title="Executed", message="m", alert_id="t-1-filled")
    assert wait_for(lambda: settled("t-1-filled"), timeout=30, what="sent").delivery == "sent"
    with session_scope() as session:
        assert len(session.scalars(select(AlertRow).where(AlertRow.alert_id == "t-1-filled")).all()) == 1
    assert len(pushover.messages()) == 1


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PUSHOVER_USER_KEY", "")
    monkeypatch.setenv("PUSHOVER_API_TOKEN", "")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_without_keys_alerts_are_recorded_and_logged_not_sent(pushover: Pushover, no_keys: None) -> None:
    alert_id = alerts.raise_alert(kind="trade_executed", priority=0, title="Trade executed", message="quiet")
    assert row(alert_id).delivery == "logged"
    assert alerts.deliver(alert_id).delivery is alerts.Delivery.LOGGED  # nothing pending to send
    result = CliRunner().invoke(cli, ["alert", "--test"])
    assert result.exit_code == 1 and "not sent" in result.output
    assert pushover.messages() == []


def test_cli_test_alert_reports_delivery(pushover: Pushover) -> None:
    result = CliRunner().invoke(cli, ["alert", "--test"])
    assert result.exit_code == 0, result.output
    assert "delivered" in result.output
    [message] = pushover.messages()
    assert message["title"] == "pm-arb test alert"
    pushover.fail_next(4, status=500)
    failed = CliRunner().invoke(cli, ["alert", "--test"])
    assert failed.exit_code == 1 and "not delivered" in failed.output and "HTTP 500" in failed.output


def test_overlong_alert_is_recorded_and_sent_within_pushover_limits(pushover: Pushover) -> None:
    long_id = "x" * 100
    first = alerts.raise_alert(kind="test", priority=0, title="T" * 400, message="M" * 3000, alert_id=long_id)
    assert alerts.raise_alert(kind="test", priority=0, title="T" * 400, message="M" * 3000, alert_id=long_id) == first
    assert len(first) == 60 and wait_for(lambda: settled(first), timeout=30, what="sent").delivery == "sent"
    [message] = pushover.messages()
    assert len(message["title"]) == 250 and len(message["message"]) == 1024 and message["message"].endswith("…")
