"""Periodic upkeep while a store does not answer (invariant 6). PostgreSQL down: discovery keeps
the scanner's market cache fresh and says in one line what it skipped; settlement, equity
snapshots and reconciliation skip the run with one line. Redis down: the polls skip theirs. No
failed task, no traceback; beat runs them again."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pm_arb_tasks.services import marketdata
from pm_arb_tasks.sim import SimServer, running_sim
from pm_arb_tasks.state.market_data import last_poll, tracked_token_ids
from pm_arb_tasks.tasks import marketdata as marketdata_tasks
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


@pytest.mark.parametrize(
    ("task", "what"),
    [(marketdata_tasks.poll_oracles, "oracle poll"), (marketdata_tasks.poll_books, "book poll")],
)
def test_polls_skip_the_run_in_one_line_while_redis_is_down(
    task: object, what: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.env import reset_process_caches

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # Redis restarting: nothing answers
    reset_process_caches()
    try:
        assert task.run() is None  # type: ignore[attr-defined]
    finally:
        monkeypatch.undo()
        reset_process_caches()
    lines = [r for r in product_errors(caplog) if r.getMessage().startswith(f"{what} skipped this run")]
    assert len(lines) == 1 and lines[0].exc_info is None
