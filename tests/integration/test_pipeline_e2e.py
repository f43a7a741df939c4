"""End to end through real worker processes on real Redis, against PostgreSQL and against the
zero-setup SQLite file (several processes writing it): trade requests on the scan queue become
paper_trades rows and alert records, one each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pm_arb_tasks.db.models import OrderClaimRow, RiskDecisionRow
from pm_arb_tasks.services.dispatch import submit
from tests.support.env import flush_redis, fresh_database, point_process_at
from tests.support.trading import alert_count, count, make_request, paper_orders, seed_market, trade_rows
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
REDIS_DB = 1
N = 6


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Worker]]:
    with fresh_database(request.param, "pipe", str(tmp_path_factory.mktemp("pipe"))) as url:
        flush_redis(REDIS_DB)
        env = point_process_at(redis_db=REDIS_DB, database_url=url, BOOK_POLL_SECONDS="120")
        with running(
            Worker("scan", "scan", env), Worker("risk", "risk", env, concurrency=2),
            Worker("execute", "execute", env), Worker("persist", "persist,alert", env),
        ) as workers:
            yield list(workers)


def test_requests_on_the_scan_queue_end_as_one_row_and_one_alert_each(stack: list[Worker]) -> None:
    # One market each: the guardian's per-market cooldown allows one request per market.
    requests = [make_request(seed_market(f"0xe2e{i}"), amount="3") for i in range(N)]
    for request in requests:
        submit(request)

    wait_for(lambda: alert_count(kind="trade_executed") >= N, timeout=60, what=f"{N} trade alerts")
    rows = trade_rows()
    assert sorted(r.request_id for r in rows) == sorted(r.request_id for r in requests)
    assert {r.status for r in rows} == {"filled"}
    assert all(r.fill_price == r.entry_price and r.filled_amount == r.quantity == 6 for r in rows)
    assert sorted(paper_orders()) == sorted(f"paper-{r.request_id}" for r in requests)
    assert count(RiskDecisionRow, approved=True) == N
    assert count(OrderClaimRow) == N
    assert alert_count() == N
