"""Invariant 3, on real workers: a paused executor places nothing, resuming fires no stale
orders, an executor restarted while halted stays paused, a reserved message meets the flag, and
the operator's `pm-arb stop` / `pm-arb resume` set and clear the flag with their alerts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery import chain
from sqlalchemy import select

from pm_arb_tasks.celery_app import app
from pm_arb_tasks.db.models import AlertRow, PaperTradeRow, RiskDecisionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import TradeRequest
from pm_arb_tasks.services import kill_switch
from pm_arb_tasks.services.dispatch import dispatch
from pm_arb_tasks.state.halt import HaltState, read_halt, set_halt
from pm_arb_tasks.tasks.pipeline import alert_outcome, execute_order, persist_outcome
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.trading import approved, make_request, paper_orders, seed_market
from tests.support.waiting import wait_for
from tests.support.workers import Worker

pytestmark = pytest.mark.integration
REDIS_DB = 2
PM_ARB = str(Path(sys.executable).with_name("pm-arb"))


@pytest.fixture(scope="module")
def workers() -> Iterator[dict[str, Worker]]:
    with fresh_schema("kill") as url:
        flush_redis(REDIS_DB)
        env = point_process_at(redis_db=REDIS_DB, database_url=url, BOOK_POLL_SECONDS="120")
        running = {
            "risk": Worker("risk", "risk", env),
            "execute": Worker("execute", "execute", env),
            "persist": Worker("persist", "persist,alert", env),
        }
        for worker in running.values():
            worker.start()
        try:
            for worker in running.values():
                worker.wait_ready()
            yield running
        finally:
            for worker in running.values():
                worker.stop()


@pytest.fixture(autouse=True)
def trading_resumed(workers: dict[str, Worker]) -> Iterator[None]:
    kill_switch.resume("test setup")
    wait_for(lambda: consumes_execute(workers["execute"]), timeout=20, what="execute consumer")
    yield


def consumes_execute(worker: Worker) -> bool:
    queues = (app.control.inspect([worker.hostname], timeout=1).active_queues() or {}).get(worker.hostname)
    return queues is not None and any(q["name"] == "execute" for q in queues)


def decisions(requests: list[TradeRequest]) -> list[tuple[bool, str]]:
    ids = [r.request_id for r in requests]
    with session_scope() as session:
        rows = session.scalars(select(RiskDecisionRow).where(RiskDecisionRow.request_id.in_(ids))).all()
        return [(row.approved, row.reason) for row in rows]


def approved_decisions(requests: list[TradeRequest]) -> int:
    return sum(1 for ok, _ in decisions(requests) if ok)


def outcomes(requests: list[TradeRequest]) -> dict[str, tuple[str, str | None]]:
    ids = [r.request_id for r in requests]
    with session_scope() as session:
        rows = session.scalars(select(PaperTradeRow).where(PaperTradeRow.request_id.in_(ids))).all()
        return {row.request_id: (row.status, row.error_message) for row in rows}


def placed(requests: list[TradeRequest]) -> set[str]:
    wanted = {f"paper-{r.request_id}" for r in requests}
    return wanted & set(paper_orders())


def send_approved(requests: list[TradeRequest]) -> None:
    """Put already-approved requests on the execute queue (the guardian rejects new ones while halted)."""
    for request in requests:
        decision = approved(request).model_dump(mode="json")
        chain(
            execute_order.s(decision).set(expires=request.deadline), persist_outcome.s(), alert_outcome.s()
        ).apply_async()


def outlive(requests: list[TradeRequest]) -> None:
    latest = max(r.deadline for r in requests)
    wait_for(lambda: datetime.now(UTC) > latest, timeout=30, what="deadlines to pass")


def test_paused_executor_places_nothing_and_resume_fires_no_stale_order(workers: dict[str, Worker]) -> None:
    # The bare Celery switch, exactly as the README documents it.
    cmd = [sys.executable, "-m", "celery", "-A", "pm_arb_tasks", "control", "cancel_consumer", "execute"]
    out = subprocess.run(cmd, env={**os.environ}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    wait_for(lambda: not consumes_execute(workers["execute"]), timeout=20, what="consumer cancelled")

    requests = [make_request(seed_market(f"0xpause{i}"), ttl=3) for i in range(3)]
    for request in requests:
        dispatch(request)
    wait_for(lambda: approved_decisions(requests) == len(requests), timeout=30, what="risk approvals")
    outlive(requests)
    assert outcomes(requests) == {} and placed(requests) == set()

    kill_switch.resume("test resume")
    done = wait_for(lambda: len(outcomes(requests)) == 3 and outcomes(requests), timeout=30, what="expired rows")
    assert set(done.values()) == {("rejected", "deadline passed before execution")}
    assert placed(requests) == set()


def test_stop_cancels_the_consumer_and_risk_refuses_new_requests(workers: dict[str, Worker]) -> None:
    report = kill_switch.stop("test stop")
    assert workers["execute"].hostname in report.workers
    assert not consumes_execute(workers["execute"])
    requests = [make_request(seed_market("0xstopped"), ttl=30)]
    dispatch(requests[0])
    wait_for(lambda: decisions(requests), timeout=30, what="risk decision")
    assert decisions(requests) == [(False, "halted: test stop")]
    assert placed(requests) == set()


def test_executor_restarted_while_halted_stays_paused(workers: dict[str, Worker]) -> None:
    kill_switch.stop("test restart")
    workers["execute"].kill()
    workers["execute"] = Worker("execute", "execute", workers["execute"].env).start().wait_ready()
    wait_for(lambda: not consumes_execute(workers["execute"]), timeout=20, what="restarted executor to pause")

    requests = [make_request(seed_market("0xrestart"), ttl=3)]
    send_approved(requests)
    outlive(requests)
    kill_switch.resume("test resume")
    done = wait_for(lambda: outcomes(requests), timeout=30, what="expired row")
    # Consumed while halted it would read "trading halted"; it was never consumed at all.
    assert list(done.values()) == [("rejected", "deadline passed before execution")]
    assert placed(requests) == set()


def test_a_message_reaching_the_executor_meets_the_halt_flag(workers: dict[str, Worker]) -> None:
    set_halt(True, "flag only, consumer still running")
    requests = [make_request(seed_market("0xreserved"), ttl=30)]
    send_approved(requests)
    done = wait_for(lambda: outcomes(requests), timeout=30, what="halted row")
    assert list(done.values()) == [("rejected", "trading halted")]
    assert placed(requests) == set()


def halt_state() -> HaltState:
    with session_scope() as session:
        return read_halt(session)


def alerts_about(reason: str) -> list[tuple[str, int]]:
    with session_scope() as session:
        rows = session.scalars(select(AlertRow).where(AlertRow.message == reason).order_by(AlertRow.id)).all()
        return [(row.kind, row.priority) for row in rows]


def pm_arb(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as an operator types it, against this module's stores."""
    return subprocess.run([PM_ARB, *args], env={**os.environ}, capture_output=True, text=True, timeout=60)


def test_pm_arb_stop_and_resume_commands(workers: dict[str, Worker]) -> None:
    executor = workers["execute"].hostname
    stopped = pm_arb("stop", "--reason", "operator cli stop")
    assert stopped.returncode == 0, stopped.stderr
    assert f"execute consumers cancelled on: {executor}" in stopped.stdout
    assert (halt_state().halted, halt_state().reason) == (True, "operator cli stop")
    assert not consumes_execute(workers["execute"])
    assert alerts_about("operator cli stop") == [("system_halted", 2)]  # critical

    resumed = pm_arb("resume", "--reason", "operator cli resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"execute consumers added on: {executor}" in resumed.stdout
    assert not halt_state().halted
    wait_for(lambda: consumes_execute(workers["execute"]), timeout=20, what="execute consumer re-added")
    assert alerts_about("operator cli resume") == [("system_resumed", 0)]
