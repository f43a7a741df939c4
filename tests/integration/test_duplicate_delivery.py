"""Invariant 1 on real workers: the same execute message delivered twice (same task id, and a
different task id) places one order and writes one row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pm_arb_tasks.tasks.pipeline import alert_outcome, execute_order, persist_outcome
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.trading import alert_count, approved, make_request, paper_orders, seed_market, trade_rows
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
REDIS_DB = 3


@pytest.fixture(scope="module")
def workers() -> Iterator[list[Worker]]:
    with fresh_schema("dup") as url:
        flush_redis(REDIS_DB)
        env = point_process_at(redis_db=REDIS_DB, database_url=url, BOOK_POLL_SECONDS="120")
        with running(Worker("execute", "execute", env), Worker("persist", "persist,alert", env)) as workers:
            yield list(workers)


def test_one_order_and_one_row_however_often_the_message_comes(workers: list[Worker]) -> None:
    executor, persister = workers
    market = seed_market("0xdup")
    decision = approved(make_request(market)).model_dump(mode="json")
    same_id = uuid.uuid4().hex
    for task_id in (same_id, same_id, uuid.uuid4().hex):
        execute_order.apply_async(args=[decision], task_id=task_id, link=persist_outcome.s() | alert_outcome.s())

    wait_for(lambda: executor.log().count("delivered again") == 2, timeout=60, what="both redeliveries")

    def alerts_finished() -> int:
        return sum("pm_arb.alert.trade[" in line and "succeeded" in line for line in persister.log().splitlines())

    wait_for(lambda: alerts_finished() == 3, timeout=60, what="all three alert tasks to finish")
    request_id = decision["request"]["request_id"]
    assert paper_orders() == [f"paper-{request_id}"]
    rows = trade_rows()
    assert [(r.request_id, r.status) for r in rows] == [(request_id, "filled")]
    assert alert_count() == 1
