"""Invariant 5 on a real worker: with PostgreSQL unreachable the persist stage keeps its messages
and retries; when the database returns every outcome is written exactly once. Alert delivery
waits out the outage the same way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pm_arb_tasks.db.models import AlertRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import TradeStatus
from pm_arb_tasks.services.alerts import raise_alert
from pm_arb_tasks.services.execution import result_for
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.tasks.pipeline import persist_outcome
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.tcp_proxy import TcpProxy
from tests.support.trading import make_request, seed_market, trade_rows
from tests.support.waiting import wait_for
from tests.support.workers import Worker

pytestmark = pytest.mark.integration
REDIS_DB = 3
N = 5


@pytest.fixture()
def persister_behind_proxy() -> Iterator[tuple[Worker, TcpProxy]]:
    with fresh_schema("outage") as url:
        flush_redis(REDIS_DB)
        proxy = TcpProxy(5432).start()
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        env = point_process_at(redis_db=REDIS_DB, database_url=url)
        worker = Worker("persist", "persist,alert", {**env, "DATABASE_URL": proxied}).start().wait_ready()
        try:
            yield worker, proxy
        finally:
            worker.stop()
            proxy.cut()


def test_outcomes_sent_during_a_database_outage_land_once_it_returns(
    persister_behind_proxy: tuple[Worker, TcpProxy],
) -> None:
    worker, proxy = persister_behind_proxy
    market = seed_market("0xoutage")
    proxy.cut()
    results = [
        result_for(make_request(market), "paper", TradeStatus.FILLED, "", datetime.now(UTC),
                   filled_amount=6, fill_price=market.tick_size * 50, filled_at=datetime.now(UTC))
        for _ in range(N)
    ]
    for result in results:
        persist_outcome.delay(result.model_dump(mode="json"))
    wait_for(lambda: worker.log().count("Retry in") >= N, timeout=60, what="persist to retry every outcome")
    assert trade_rows() == []

    proxy.start()
    rows = wait_for(lambda: len(trade_rows()) == N and trade_rows(), timeout=90, what="rows after recovery")
    assert sorted(r.trade_id for r in rows) == sorted(r.trade_id for r in results)


def test_an_alert_raised_during_a_database_outage_is_delivered_once_it_returns(
    persister_behind_proxy: tuple[Worker, TcpProxy], monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, proxy = persister_behind_proxy
    proxy.cut()  # the worker's database is away; this process still records the alert
    # Keys here only, so the row is recorded `pending` and queued; the worker has none, so its
    # delivery logs the alert instead of calling Pushover.
    monkeypatch.setenv("PUSHOVER_USER_KEY", "u" * 30)
    monkeypatch.setenv("PUSHOVER_API_TOKEN", "a" * 30)
    get_settings.cache_clear()
    try:
        alert_id = raise_alert(kind="test", priority=0, title="during the outage", message="delivered later")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    def delivery() -> str | None:
        with session_scope() as session:
            row = session.query(AlertRow).filter_by(alert_id=alert_id).one()
            return row.delivery

    wait_for(lambda: "Retry in" in worker.log(), timeout=60, what="the delivery to retry")
    assert delivery() == "pending"
    proxy.start()
    wait_for(lambda: delivery() == "logged", timeout=60, what="the alert delivered (logged: no Pushover keys)")
    assert "raised unexpected" not in worker.log()
