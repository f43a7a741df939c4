"""Periodic upkeep while PostgreSQL does not answer (invariant 6): discovery keeps the scanner's
market cache fresh and says in one line what it skipped; settlement, equity snapshots and
reconciliation skip the run with one line, no failed task, no traceback; beat runs them again."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pm_arb_tasks.services import marketdata
from pm_arb_tasks.sim import SimServer, running_sim
from pm_arb_tasks.state.market_data import last_poll, tracked_token_ids
from pm_arb_tasks.tasks import venue_ops
from tests.support.marketdata import marketdata_env

pytestmark = pytest.mark.integration
UNREACHABLE = "postgresql+psycopg2://postgres@127.0.0.1:9/test"  # nothing listens on port 9


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with running_sim(seed=5) as server:
        yield server


@pytest.fixture(autouse=True)
def database_down(sim: SimServer) -> Iterator[None]:
    with marketdata_env("gamma", sim.url, database_url=UNREACHABLE):
        yield


def product_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("pm_arb_tasks") and r.levelno >= logging.WARNING]


def test_discovery_feeds_the_scanner_and_skips_only_the_table(caplog: pytest.LogCaptureFixture) -> None:
    before = datetime.now(UTC)
    report = marketdata.discover_markets(before)
    assert report.ok and report.rows > 0
    assert tracked_token_ids(), "the scanner's universe must not wait for the database"
    assert (last_poll("markets") or before) >= before.replace(microsecond=0)
    [line] = product_errors(caplog)
    assert "database upsert and resolutions skipped" in line.getMessage() and line.exc_info is None


@pytest.mark.parametrize(
    ("task", "what"),
    [(venue_ops.settle, "settlement"), (venue_ops.snapshot_equity, "equity snapshot")],
)
def test_upkeep_skips_the_run_in_one_line(task: object, what: str, caplog: pytest.LogCaptureFixture) -> None:
    assert task.run() is None  # type: ignore[attr-defined]
    [line] = product_errors(caplog)
    assert line.getMessage().startswith(f"{what} skipped this run (OperationalError")
    assert line.exc_info is None
