"""The guardian on real PostgreSQL and on SQLite: reservation, idempotency, settlement, breaches,
one alert per halt, and threads racing on one market never approving past its limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from pm_arb_tasks.db.models import AlertRow, PositionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import TradeStatus
from pm_arb_tasks.risk import guardian
from pm_arb_tasks.state.halt import is_halted, set_halt
from tests.support.risk import (
    GUARDIAN_REDIS_DB,
    decisions,
    exposure,
    request,
    reset_book,
    result,
    risk_stores,
    snapshot,
)
from tests.support.sql import statements_sent
from tests.support.trading import count

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True, params=["postgres", "sqlite"])
def stores(request: pytest.FixtureRequest) -> Iterator[None]:
    with risk_stores(GUARDIAN_REDIS_DB, request.param, MARKET_COOLDOWN_SECONDS="0"):
        yield


@pytest.fixture(autouse=True)
def clean() -> None:
    reset_book()


def now() -> datetime:
    return datetime.now(UTC)


def test_approval_reserves_once_and_a_redelivery_gets_the_same_decision() -> None:
    req = request("m1", "15")
    first = guardian.review(req, now())
    again = guardian.review(req, now())
    assert first.approved and again.approved and again.approved_amount == first.approved_amount == D(15)
    assert exposure("m1") == exposure() == D(15)
    assert len(decisions()) == 1 and decisions()[0].outcome == "YES" and decisions()[0].mode == "paper"


def test_reduced_then_rejected_at_the_position_limit_every_decision_recorded() -> None:
    assert guardian.review(request("m1", "15"), now()).approved_amount == D(15)
    reduced = guardian.review(request("m1", "15"), now())
    assert reduced.approved and reduced.approved_amount == D(5) and "position limit" in reduced.reason
    rejected = guardian.review(request("m1", "15"), now())
    assert not rejected.approved and rejected.approved_amount == 0
    assert exposure("m1") == D(20)
    assert [(d.approved, d.reason.split(":")[0]) for d in decisions()][-1] == (False, "position limit")


def test_settle_failed_releases_all_partial_keeps_cost_and_only_once() -> None:
    failed = guardian.review(request("a", "10"), now())
    partial = guardian.review(request("b", "10"), now())
    filled = guardian.review(request("c", "10"), now())
    assert exposure() == D(30)
    guardian.settle(failed, result(failed, TradeStatus.FAILED))
    guardian.settle(partial, result(partial, TradeStatus.PARTIAL, shares="8", price="0.5"))
    guardian.settle(filled, result(filled, TradeStatus.FILLED, shares="20", price="0.5"))
    for _ in range(2):  # a redelivered execution must not release twice
        guardian.settle(failed, result(failed, TradeStatus.FAILED))
        guardian.settle(partial, result(partial, TradeStatus.PARTIAL, shares="8", price="0.5"))
    assert (exposure("a"), exposure("b"), exposure("c")) == (0, D(4), D(10))
    assert exposure() == D(14)


def test_unknown_keeps_the_reservation_until_the_final_outcome() -> None:
    decision = guardian.review(request("u", "10"), now())
    guardian.settle(decision, result(decision, TradeStatus.UNKNOWN))
    guardian.settle(decision, result(decision, TradeStatus.PENDING))
    assert exposure("u") == D(10)
    final = result(decision, TradeStatus.FILLED, shares="10", price="0.4")
    guardian.settle(decision, final)
    guardian.settle(decision, final)
    assert exposure("u") == D(4)


def test_nothing_executed_releases_everything_and_a_rejection_has_nothing_to_release() -> None:
    decision = guardian.review(request("n", "10"), now())
    guardian.settle(decision, None)
    assert exposure() == 0
    set_halt(True, "test")
    refused = guardian.review(request("n2", "10"), now())
    assert not refused.approved and refused.reason == "halted: test"
    guardian.settle(refused, None)
    assert exposure() == 0


def test_resolution_releases_the_kept_cost_and_open_reservations() -> None:
    filled = guardian.review(request("r", "10"), now())
    guardian.settle(filled, result(filled, TradeStatus.FILLED, shares="20", price="0.5"))
    unknown = guardian.review(request("r", "6"), now())
    guardian.settle(unknown, result(unknown, TradeStatus.UNKNOWN))
    other = guardian.review(request("elsewhere", "3"), now())
    assert exposure() == D(19)
    for _ in range(2):
        with session_scope() as session:
            guardian.release_market(session, "paper", "r", now())
    guardian.settle(unknown, result(unknown, TradeStatus.FAILED))  # late reconciliation: nothing left
    assert exposure("r") == 0 and exposure() == D(3) == other.approved_amount


def test_total_exposure_limit_spans_markets() -> None:
    amounts = [guardian.review(request(f"t{i}", "20"), now()).approved_amount for i in range(6)]
    assert amounts == [D(20)] * 5 + [D(0)]
    assert exposure() == D(100)


def test_expired_request_is_rejected_without_reserving() -> None:
    req = request("x", "5", ttl=-1)
    assert guardian.review(req, now()).reason == "deadline passed"
    assert exposure() == 0


def test_drawdown_breach_halts_and_raises_one_critical_alert() -> None:
    snapshot("260", at=now() - timedelta(seconds=1))
    snapshot("215")  # 45 below the peak of 260: over the 20 % of 200 = 40 limit
    first = guardian.review(request("d1", "5"), now())
    second = guardian.review(request("d2", "5"), now())
    assert not first.approved and first.reason.startswith("drawdown limit")
    assert not second.approved
    assert is_halted()
    with session_scope() as session:
        alerts = session.query(AlertRow).filter_by(kind="risk_halt").all()
    assert len(alerts) == 1 and alerts[0].priority == 2 and "drawdown" in alerts[0].title
    assert exposure() == 0


def test_each_halt_alerts_once_and_a_halt_after_resume_alerts_again() -> None:
    snapshot("260", at=now() - timedelta(seconds=1))
    snapshot("215")  # a drawdown of 45 (limit 40), which `pm-arb resume` does not cure
    for _ in range(3):  # the first breach halts; the others meet the halt
        assert not guardian.review(request("h1", "5"), now()).approved
    assert count(AlertRow, kind="risk_halt") == 1
    set_halt(False, "resumed by the operator")
    again = guardian.review(request("h2", "5"), now())
    assert again.reason.startswith("drawdown limit") and is_halted()
    assert not guardian.review(request("h3", "5"), now()).approved
    assert count(AlertRow, kind="risk_halt") == 2  # same day, same breach, a new halt


def test_daily_realized_loss_breach_halts() -> None:
    settled_position("lost", "-21", now())
    try:
        decision = guardian.review(request("d3", "5"), now())
        assert not decision.approved and decision.reason.startswith("daily_loss limit")
        assert is_halted() and count(AlertRow, kind="risk_halt") == 1
    finally:
        with session_scope() as session:
            session.query(PositionRow).delete()


def settled_position(market_id: str, pnl: str, settled_at: datetime) -> None:
    with session_scope() as session:
        session.add(PositionRow(mode="paper", market_id=market_id, outcome="YES", token_id="t",
                                realized_pnl=D(pnl), status="settled", settled_at=settled_at))


def test_before_the_first_snapshot_equity_is_the_bankroll_plus_every_realized_pnl() -> None:
    settled_position("old-loss", "-45", now() - timedelta(days=3))  # not today's: no daily-loss breach
    try:
        decision = guardian.review(request("f1", "5"), now())
        assert not decision.approved and decision.reason.startswith("drawdown limit")  # 155 against 200
    finally:
        with session_scope() as session:
            session.query(PositionRow).delete()


def test_with_a_snapshot_on_record_the_review_never_sums_the_position_history() -> None:
    """The sum of every realized P&L grows with every trade and is read under the mode's lock; it
    is only the equity before the first snapshot, and PostgreSQL must not evaluate it after."""
    from sqlalchemy import text

    from pm_arb_tasks.db.session import autocommit, get_engine
    from pm_arb_tasks.risk import book

    if get_engine().dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    settled_position("old", "-3", now() - timedelta(days=3))
    snapshot("210")
    params = {
        "book_mode": "paper", "book_market": "m1", "book_request": "r", "book_day_start": now() - timedelta(hours=1),
        "book_total": book.TOTAL, "book_halt_key": "halt", "book_bankroll": D(200),
    }  # fmt: skip
    try:
        with autocommit() as conn:
            plan = conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + book._READ), params).scalar_one()
    finally:
        with session_scope() as session:
            session.query(PositionRow).delete()

    def nodes(node: dict) -> list[dict]:
        return [node, *(found for child in node.get("Plans", []) for found in nodes(child))]

    scans = [n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == "positions"]
    history = [n for n in scans if "settled_at" not in f"{n.get('Index Cond')} {n.get('Filter')}"]
    assert len(scans) == 2 and len(history) == 1, scans
    assert history[0]["Actual Loops"] == 0, "the review summed every position's P&L with equity on record"


def test_cooldown_per_market(monkeypatch: pytest.MonkeyPatch) -> None:
    from pm_arb_tasks.settings import get_settings

    monkeypatch.setenv("MARKET_COOLDOWN_SECONDS", "60")
    get_settings.cache_clear()
    try:
        assert guardian.review(request("cd", "5"), now()).approved
        assert guardian.review(request("cd", "5"), now()).reason == "market cooldown"
        assert guardian.review(request("other", "5"), now()).approved
        assert guardian.review(request("cd", "5"), now() + timedelta(seconds=61)).approved
    finally:
        monkeypatch.setenv("MARKET_COOLDOWN_SECONDS", "0")
        get_settings.cache_clear()


def test_threads_racing_on_one_market_never_pass_its_limit() -> None:
    """Each review is its own transaction on its own connection: the lock, not the process,
    serialises them (PostgreSQL row lock, SQLite write lock)."""
    requests = [request("race", "3", min_amount="3") for _ in range(24)]
    decided: list[bool] = []

    def review_some(batch: list) -> None:
        decided.extend(guardian.review(req, now()).approved for req in batch)

    threads = [threading.Thread(target=review_some, args=(requests[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(decided) == 24 and decided.count(True) == 6  # $20 position limit: six $3 requests
    assert exposure("race") == exposure() == D(18)


def test_review_and_settle_are_served_by_the_statement_cache() -> None:
    """Every statement of the order path's review (and of settle) is compiled once per process: a
    statement SQLAlchemy cannot cache is compiled again on every call (a multi-row VALUES insert
    built as an expression cost ~0.6 ms a review)."""
    warm = guardian.review(request("w", "5"), now())
    guardian.settle(warm, result(warm, TradeStatus.FAILED))
    with statements_sent() as sent:
        decision = guardian.review(request("m1", "5"), now())
        guardian.settle(decision, result(decision, TradeStatus.FAILED))
    assert decision.approved and exposure("m1") == 0
    assert sent and [statement for statement, compiled in sent if compiled] == []


def test_a_review_is_two_round_trips_on_postgresql() -> None:
    """BEGIN, the lock and the read go as one query, the move, the decision and COMMIT as
    another; SQLite runs the same statements one by one (it was seven trips on PostgreSQL)."""
    from pm_arb_tasks.db.session import get_engine

    guardian.review(request("w", "5"), now())
    with statements_sent() as sent:
        approved = guardian.review(request("m1", "5"), now())
        rejected = guardian.review(request("m2", "5", ttl=-1), now())
    assert approved.approved and not rejected.approved
    if get_engine().dialect.name == "postgresql":
        assert len(sent) == 4
        assert all(statement.startswith("BEGIN;") for statement, _ in sent[0::2])
        assert all(statement.endswith("; COMMIT") for statement, _ in sent[1::2])
    else:
        # one at a time: BEGIN, the lock, the read, (the move,) the decision, COMMIT
        assert len(sent) == 6 + 5 and not any(";" in statement for statement, _ in sent)


def test_only_a_halting_review_waits_for_its_commit_to_be_flushed() -> None:
    """A decision's commit returns before the WAL flush (the executor's claim flushes it, and
    claims nothing whose approval is not on record); a halt is committed durably before its alert."""
    from pm_arb_tasks.db.session import get_engine

    guardian.review(request("w", "5"), now())
    snapshot("260", at=now() - timedelta(seconds=1))
    with statements_sent() as sent:
        guardian.review(request("m1", "5"), now())
        snapshot("215")  # a drawdown breach from here on
        halting = guardian.review(request("m2", "5"), now())
    assert halting.reason.startswith("drawdown limit") and is_halted()
    closing = [statement for statement, _ in sent if "INSERT INTO risk_decisions" in statement]
    assert len(closing) == 2
    no_wait = "SET LOCAL synchronous_commit TO OFF"
    if get_engine().dialect.name == "postgresql":
        assert closing[0].startswith(no_wait) and no_wait not in closing[1]
    else:  # SQLite has no such setting: the statement is not sent at all
        assert not any(no_wait in statement for statement, _ in sent)


def test_a_review_that_fails_midway_leaves_no_transaction_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """The review's transaction is begun by hand on an autocommit connection; if anything fails
    between BEGIN and COMMIT, the connection must not go back to the pool holding the lock (the
    next review from any other connection would wait on it forever)."""
    from sqlalchemy import create_engine, text

    from pm_arb_tasks.settings import get_settings

    guardian.review(request("w", "5"), now())

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("rules crashed")

    monkeypatch.setattr(guardian, "evaluate", broken)
    with pytest.raises(RuntimeError):
        guardian.review(request("m1", "5"), now())
    url = get_settings().database_url
    other = create_engine(url, connect_args={"timeout": 1} if url.startswith("sqlite") else {})
    try:
        with other.connect() as conn:
            if url.startswith("sqlite"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")  # fails after 1 s if a writer holds the database
            else:
                conn.exec_driver_sql("SET lock_timeout = '2s'")
            conn.execute(text("UPDATE risk_exposure SET amount = amount WHERE market_id = '*'"))
            conn.rollback()
    finally:
        other.dispose()
    assert exposure("m1") == 0 and len(decisions()) == 1  # the failed review left nothing behind


def test_the_read_is_prepared_once_per_connection_and_a_lost_one_heals() -> None:
    """PostgreSQL: the first review on a connection prepares the read in its first round trip,
    later ones only execute it. A connection that lost it (someone ran DEALLOCATE, a pooler
    swapped the session) fails one review, safely, and is replaced."""
    from sqlalchemy.exc import SQLAlchemyError

    from pm_arb_tasks.db.session import autocommit, get_autocommit_engine, get_engine

    if get_engine().dialect.name != "postgresql":
        pytest.skip("SQLite has no prepared statements; it runs the read as it is")
    get_autocommit_engine().dispose()  # one fresh connection, reused by every review below
    with statements_sent() as sent:
        guardian.review(request("w", "5"), now())
        guardian.review(request("w", "5"), now())
    first, second = sent[0][0], sent[2][0]
    assert "PREPARE pmarb_risk_read" in first and "EXECUTE pmarb_risk_read" in first
    assert "PREPARE" not in second and "EXECUTE pmarb_risk_read" in second
    with autocommit() as conn:
        conn.exec_driver_sql("DEALLOCATE ALL")  # the pooled connection forgets, the pool does not know
    before = len(decisions())
    with pytest.raises(SQLAlchemyError):  # the review task turns this into a rejection
        guardian.review(request("m1", "5"), now())
    assert len(decisions()) == before and exposure("m1") == 0
    assert guardian.review(request("m1", "5"), now()).approved and exposure("m1") == D(5)
