"""The shortened chaos suite CI runs (`python -m chaos` runs the full one and writes RELIABILITY.md):
the whole Procfile stack against the simulator on a private Redis, faults injected under traffic,
counted from the venue's order log and the database (chaos/ledger.py).

Each scenario must end with no duplicate order, no stale order, no lost or unrecorded outcome and
no crash. A failure message carries the scenario's counts and what the stores say about each lost
request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chaos import scenarios
from chaos.harness import Rig, free_port, port_free, rig
from chaos.invariants import missing
from chaos.scenarios import QUICK, Result

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    port = 6391 if port_free(6391) else free_port()  # `make chaos` may hold 6391
    with rig(redis_port=port, processes=("beat", "oracle", "markets", "scan", "risk", "execute", "persist"),
             run_dir=Path(tmp_path_factory.mktemp("chaos"))) as started:  # fmt: skip
        scenarios.prime(started)
        yield started


@pytest.fixture(autouse=True)
def revive(stack: Rig) -> Iterator[None]:
    """A scenario that crashed a process must not take the next one down with it."""
    yield
    stack.stack.revive()


def explain(result: Result) -> str:
    c = result.counts
    lines = [f"{result.scenario}: {c}", *[f"check {k}: {v}" for k, v in result.checks.items()], *result.notes]
    return "\n".join([*lines, *c.details, *c.traceback_samples])


def assert_clean(result: Result, *checks: str) -> None:
    c = result.counts
    assert (c.duplicates, c.stale_orders) == (0, 0), explain(result)
    assert (c.rows_lost, c.unrecorded_fills) == (0, 0), explain(result)
    assert (c.worker_exits, c.tracebacks) == (0, 0), explain(result)
    assert all(result.checks[name] for name in checks), explain(result)


def test_every_invariant_is_named_by_an_existing_test() -> None:
    assert missing() == []


def test_redis_restart(stack: Rig) -> None:
    assert_clean(scenarios.redis_restart(stack, QUICK), "resumed within 10 s")


def test_postgres_outage(stack: Rig) -> None:
    assert_clean(scenarios.postgres_outage(stack, QUICK), "resumed", "operator alerted")


def test_sigkill_of_the_executor_mid_order(stack: Rig) -> None:
    profile = replace(QUICK, kill_workers=("execute",))
    assert_clean(scenarios.kill_each_worker(stack, profile), "watchdog alerted on execute", "execute recovered")


def test_load_discards_expired_requests(stack: Rig) -> None:
    result = scenarios.load(stack, QUICK)
    assert_clean(result, *result.checks)
