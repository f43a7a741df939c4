"""The scanner's opportunity log (db/opportunity_log.py) on PostgreSQL and SQLite: one statement
per scan, every value as given; on PostgreSQL its commit does not wait for the WAL flush, and a
write that fails leaves no connection in the pool inside its transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError

from pm_arb_tasks.db import opportunity_log
from pm_arb_tasks.db.models import OpportunityRow
from pm_arb_tasks.db.session import get_autocommit_engine, get_engine, session_scope
from tests.support.env import fresh_database, point_process_at
from tests.support.sql import statements_sent

pytestmark = pytest.mark.integration
REDIS_DB = 0  # named because the settings need one; nothing here touches Redis


@pytest.fixture(autouse=True, params=["postgres", "sqlite"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    with fresh_database(request.param, "opplog", str(tmp_path)) as url:
        point_process_at(redis_db=REDIS_DB, database_url=url)
        yield


def row(**changes: object) -> dict[str, object]:
    return {
        "opportunity_id": uuid.uuid4().hex, "market_id": "0xm", "symbol": "BTC", "outcome": "YES",
        "fair_value": D("0.61234567"), "ask": D("0.55"), "fee": D("0.0123"), "net_edge": D("0.0500"),
        "emitted": True, "reason": "emitted", "request_id": uuid.uuid4().hex,
        "observed_at": datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC), **changes,
    }


def stored() -> dict[str, dict[str, object]]:
    with session_scope() as session:
        rows = session.scalars(select(OpportunityRow)).all()
        return {r.opportunity_id: {c: getattr(r, c) for c in row()} for r in rows}


def test_the_rows_of_a_scan_are_one_statement_and_keep_every_value() -> None:
    rows = [row(), row(outcome=None, fair_value=None, ask=None, fee=None, net_edge=None, emitted=False,
                       reason="no volatility", request_id=None)]
    with statements_sent() as sent:
        opportunity_log.write(rows)
    assert len(sent) == 1
    assert stored() == {r["opportunity_id"]: r for r in rows}


def test_on_postgresql_the_log_does_not_wait_for_the_flush_and_a_failed_write_leaves_nothing_open() -> None:
    if get_engine().dialect.name != "postgresql":
        pytest.skip("SQLite has neither asynchronous commits nor a pool of its own for this")
    first = row()
    with statements_sent() as sent:
        opportunity_log.write([first])
    assert "SET LOCAL synchronous_commit TO OFF" in sent[0][0]
    get_autocommit_engine().dispose()  # one connection from here on, if the failed one were kept
    with pytest.raises(IntegrityError):
        opportunity_log.write([row(), first])  # a repeated id: the whole statement fails
    later = row()
    opportunity_log.write([later])  # on a connection that is not stuck in an aborted transaction
    with pytest.raises(DataError):  # a value too long for its column is refused, never cut
        opportunity_log.write([row(market_id="0x" + "f" * 80)])
    assert set(stored()) == {first["opportunity_id"], later["opportunity_id"]}
