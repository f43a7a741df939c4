"""The watchdog against real workers: killing the execute worker raises exactly one critical alert,
restarting it sends exactly one recovery note, and passes in between stay quiet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pm_arb_tasks.services.alerts import CRITICAL
from pm_arb_tasks.state.market_data import mark_poll
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.ops import OTHER_QUEUES, REDIS_DBS, alert_rows, watchdog_pass
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
REDIS_DB = REDIS_DBS[0]


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Worker]]:
    with fresh_schema("ops_watchdog") as url:
        flush_redis(REDIS_DB)
        env = point_process_at(redis_db=REDIS_DB, database_url=url, PUSHOVER_USER_KEY="", PUSHOVER_API_TOKEN="")
        execute, others = Worker("execute", "execute", env), Worker("others", OTHER_QUEUES, env)
        with running(execute, others):
            yield {"execute": execute, "others": others}


def test_killed_executor_alerts_once_and_its_return_once(stack: dict) -> None:
    assert watchdog_pass() == [], "a healthy stack raises nothing"

    stack["execute"].kill()
    [dead] = wait_for(watchdog_pass, timeout=30, interval=0.5, what="the watchdog to notice the dead executor")
    assert (dead.priority, dead.title) == (CRITICAL, "Queue execute has no consumer")
    assert watchdog_pass() == [] and watchdog_pass() == [], "an ongoing incident must not alert again"

    stack["execute"].start().wait_ready()  # the same node name comes back
    [note] = wait_for(watchdog_pass, timeout=30, interval=0.5, what="the recovery note")
    assert note.title == "Recovered: Queue execute has no consumer"
    assert watchdog_pass() == []

    rows = alert_rows()
    assert [(r.priority, r.title) for r in rows] == [
        (CRITICAL, "Queue execute has no consumer"),
        (0, "Recovered: Queue execute has no consumer"),
    ]
    assert all(r.delivery == "logged" for r in rows)  # no Pushover keys in tests


def test_watchdog_task_runs_on_the_ops_worker(stack: dict) -> None:
    """The beat entry's task name reaches a worker and completes (its pass finds nothing new)."""
    from pm_arb_tasks.tasks.ops import watchdog_pass as task

    before = len(alert_rows())
    now = datetime.now(UTC)
    mark_poll("oracle", now)
    mark_poll("books", now)
    task.apply_async()
    wait_for(lambda: re.search(r"Task pm_arb\.ops\.watchdog\[[^]]+\] succeeded", stack["others"].log()),
             timeout=30, what="the watchdog task to succeed on the worker")
    assert len(alert_rows()) == before
