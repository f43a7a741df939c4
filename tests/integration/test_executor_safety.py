"""The executor's safety argument, step by step, on real PostgreSQL and Redis with a counting venue:
claim before any venue call, halt and deadline checked just before posting, ambiguous failures
recorded as unknown (with secrets masked), redelivery asks about the stored hash instead of posting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pm_arb_tasks.db.models import OrderClaimRow, SystemStateRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import ExecutionResult, RiskDecision, TradeRequest, TradeStatus
from pm_arb_tasks.services import execution
from pm_arb_tasks.services.execution import OrderRefused, PreparedOrder, result_for
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.halt import HALT_KEY, is_halted, set_halt
from pm_arb_tasks.state.redis_client import get_redis
from tests.support.env import flush_redis, fresh_database, point_process_at
from tests.support.sql import statements_sent
from tests.support.trading import approved, count, make_request, paper_orders, seed_market

pytestmark = pytest.mark.integration
REDIS_DB = 2
SECRET = "0x" + "5e" * 32


class CountingVenue:
    """Stands in for a venue: counts posts, can fail in the ways a venue does."""

    mode = "paper"

    def __init__(self, fail_with: Exception | None = None, hold: threading.Event | None = None) -> None:
        self.posts: list[str] = []
        self.recovered: list[str | None] = []
        self.fail_with, self.hold = fail_with, hold

    def prepare(self, request: TradeRequest, now: datetime) -> PreparedOrder:
        return PreparedOrder(order_hash=f"0xhash-{request.request_id}")

    def submit(self, request: TradeRequest, order: PreparedOrder, now: datetime) -> ExecutionResult:
        if self.hold:
            self.hold.wait(5)
        self.posts.append(request.request_id)
        if self.fail_with:
            raise self.fail_with
        return result_for(request, self.mode, TradeStatus.FILLED, "", now, filled_amount=request.amount * 2,
                          fill_price=request.limit_price, order_hash=order.order_hash)

    def recover(self, request: TradeRequest, order_hash: str | None, now: datetime) -> ExecutionResult:
        self.recovered.append(order_hash)
        return result_for(request, self.mode, TradeStatus.UNKNOWN, "asked venue", now, order_hash=order_hash)


@pytest.fixture(autouse=True, params=["postgres", "sqlite"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    with fresh_database(request.param, "exec", str(tmp_path)) as url:
        flush_redis(REDIS_DB)
        point_process_at(redis_db=REDIS_DB, database_url=url, POLYMARKET_SECRET=SECRET)
        seed_market("0xexec")
        yield


def now() -> datetime:
    return datetime.now(UTC)


def request() -> TradeRequest:
    from pm_arb_tasks.state.market_data import get_market

    market = get_market("0xexec")
    assert market is not None
    return make_request(market)


def test_second_delivery_reports_the_first_outcome_without_posting() -> None:
    venue, decision = CountingVenue(), approved(request())
    first = execution.execute(decision, venue, now)
    second = execution.execute(decision, venue, now)
    assert venue.posts == [decision.request.request_id]
    assert first == second and first.status is TradeStatus.FILLED


def test_racing_deliveries_post_once() -> None:
    gate = threading.Event()
    venue, decision = CountingVenue(hold=gate), approved(request())
    results: list[ExecutionResult | None] = []
    def run() -> None:
        results.append(execution.execute(decision, venue, now))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert venue.posts == [decision.request.request_id]
    assert len(results) == 4


def test_interrupted_delivery_is_recovered_by_its_stored_hash() -> None:
    class DiesAfterPost(CountingVenue):
        def submit(self, request, order, now):  # type: ignore[no-untyped-def]
            self.posts.append(request.request_id)
            raise SystemExit("worker killed")  # not an Exception: nothing is recorded

    decision = approved(request())
    with pytest.raises(SystemExit):
        execution.execute(decision, DiesAfterPost(), now)
    venue = CountingVenue()
    result = execution.execute(decision, venue, now)
    assert venue.posts == [] and venue.recovered == [f"0xhash-{decision.request.request_id}"]
    assert result.status is TradeStatus.UNKNOWN


def test_halt_flag_is_checked_just_before_the_post() -> None:
    set_halt(True, "test")
    venue = CountingVenue()
    result = execution.execute(approved(request()), venue, now)
    assert venue.posts == [] and (result.status, result.error_message) == (TradeStatus.REJECTED, "trading halted")


class UnsignedVenue(CountingVenue):
    """A venue that signs nothing (paper): its preparation leaves no hash to record."""

    def prepare(self, request: TradeRequest, now: datetime) -> PreparedOrder:
        return PreparedOrder()


def test_a_halt_set_while_the_order_is_signed_stops_it() -> None:
    """The signed order's record is the last statement before the post, and it reads the flag."""

    class HaltsWhileSigning(CountingVenue):
        def prepare(self, request: TradeRequest, now: datetime) -> PreparedOrder:
            set_halt(True, "operator stop")
            return super().prepare(request, now)

    venue = HaltsWhileSigning()
    result = execution.execute(approved(request()), venue, now)
    assert venue.posts == [] and (result.status, result.error_message) == (TradeStatus.REJECTED, "trading halted")


def test_a_venue_that_signs_nothing_reads_the_halt_with_the_claim() -> None:
    set_halt(True, "test")
    venue = UnsignedVenue()
    result = execution.execute(approved(request()), venue, now)
    assert venue.posts == [] and (result.status, result.error_message) == (TradeStatus.REJECTED, "trading halted")


@pytest.mark.parametrize(("venue", "expected"), [(UnsignedVenue, 2), (CountingVenue, 3)])
def test_the_halt_check_costs_no_statement_of_its_own(venue: type[CountingVenue], expected: int) -> None:
    """The claim, the signed order's record (when there is one) and the final record: the flag
    comes back with the claim or the record (it was a SELECT of its own on every order)."""
    placing, decision = venue(), approved(request())
    with statements_sent() as sent:
        result = execution.execute(decision, placing, now)
    assert result.status is TradeStatus.FILLED and placing.posts == [decision.request.request_id]
    assert [statement.split()[0] for statement, _ in sent] == ["INSERT"] + ["UPDATE"] * (expected - 1)


def test_a_halt_flag_that_cannot_be_read_counts_as_halted(monkeypatch: pytest.MonkeyPatch) -> None:
    with session_scope() as session:
        session.add(SystemStateRow(key=HALT_KEY, value="{not json", updated_at=now()))
    venue = CountingVenue()
    result = execution.execute(approved(request()), venue, now)
    assert venue.posts == [] and result.error_message == "trading halted"
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:9/gone")
    get_settings.cache_clear()
    try:
        assert is_halted()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_deadline_is_checked_just_before_the_post() -> None:
    venue, decision = CountingVenue(), approved(request())
    late = lambda: decision.request.deadline + timedelta(milliseconds=1)  # noqa: E731
    result = execution.execute(decision, venue, late)
    assert venue.posts == [] and (result.status, result.error_message) == (TradeStatus.REJECTED, "deadline passed")


def test_an_exception_after_posting_is_unknown_and_masks_secrets() -> None:
    venue = CountingVenue(fail_with=TimeoutError(f"read timed out (secret {SECRET})"))
    result = execution.execute(approved(request()), venue, now)
    assert result.status is TradeStatus.UNKNOWN and len(venue.posts) == 1
    assert SECRET not in (result.error_message or "") and "***" in (result.error_message or "")


def test_an_outage_after_posting_is_one_error_line_and_a_bug_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis or the network going away mid-reply is expected (the outcome is unknown, reconciliation
    settles it): one line naming it, as for every other outage. Anything else is a bug: traceback."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    for failure, traced in ((RedisConnectionError("Connection reset by peer"), False), (ValueError("bug"), True)):
        caplog.clear()
        with caplog.at_level("ERROR", logger="pm_arb_tasks.services.execution"):
            result = execution.execute(approved(request()), CountingVenue(fail_with=failure), now)
        assert result is not None and result.status is TradeStatus.UNKNOWN
        (record,) = [r for r in caplog.records if "outcome unknown" in r.getMessage()]
        assert (record.exc_info is not None) is traced, record.getMessage()


def test_a_clean_refusal_is_a_result_not_an_exception() -> None:
    venue = CountingVenue(fail_with=OrderRefused(TradeStatus.REJECTED, "invalid tick size"))
    result = execution.execute(approved(request()), venue, now)
    assert (result.status, result.error_message) == (TradeStatus.REJECTED, "invalid tick size")


def test_unapproved_decision_never_reaches_the_venue() -> None:
    venue, decision = CountingVenue(), approved(request())
    rejected = decision.model_copy(update={"approved": False, "reason": "limit"})
    assert execution.execute(rejected, venue, now) is None and venue.posts == []


def test_an_approval_not_on_record_is_refused_without_a_claim() -> None:
    """What the guardian did not record places nothing, whatever the message says: a decision the
    database lost in a crash (the guardian's commit does not wait for its flush), one written by hand."""
    placing = request()
    unrecorded = RiskDecision(request=placing, approved=True, approved_amount=placing.amount, decided_at=now())
    venue = CountingVenue()
    for result in (
        execution.execute(unrecorded, venue, now),
        execution.settle_unexecuted(unrecorded, "deadline passed before execution", now),
    ):
        assert result is not None and result.status is TradeStatus.REJECTED
        assert result.error_message == "no approved decision on record for this request in paper mode"
    assert venue.posts == [] and venue.recovered == [] and count(OrderClaimRow) == 0
    recorded = approved(placing)  # recorded later (its review delivered again): placed once
    assert execution.execute(recorded, venue, now).status is TradeStatus.FILLED and venue.posts == [placing.request_id]


def test_a_paper_approval_is_never_placed_by_a_live_executor() -> None:
    """A request approved against the paper book (still queued when the operator went live) is not
    an approval to spend real money."""

    class LiveCountingVenue(CountingVenue):
        mode = "live"

    venue, decision = LiveCountingVenue(), approved(request(), "paper")
    result = execution.execute(decision, venue, now)
    assert result is not None and result.status is TradeStatus.REJECTED
    assert result.error_message == "no approved decision on record for this request in live mode"
    assert venue.posts == [] and count(OrderClaimRow) == 0


def test_the_paper_venue_fills_against_the_book_as_it_is_at_the_venue_call() -> None:
    """The book is the venue's to read once the order reached it, not the executor's before the call
    (it was read in `prepare`, on the order path, and a fill used that copy)."""
    from pm_arb_tasks.services.paper_venue import PaperVenue
    from pm_arb_tasks.state.market_data import BOOK_KEY

    venue, placing = PaperVenue(), request()
    order = venue.prepare(placing, now())
    get_redis().delete(BOOK_KEY.format(token_id=placing.token_id))
    with pytest.raises(OrderRefused, match="no order book"):
        venue.submit(placing, order, now())
    assert paper_orders() == []


def test_a_paper_book_that_cannot_be_read_is_a_clean_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    """This venue knows it filled nothing, so the outcome is a failure, never `unknown`."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from pm_arb_tasks.services import paper_venue

    def redis_down(*_: object) -> None:
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(paper_venue, "get_market_and_book", redis_down)
    result = execution.execute(approved(request()), paper_venue.PaperVenue(), now)
    assert result is not None and (result.status, result.error_message) == (
        TradeStatus.FAILED, "order book unreadable: ConnectionError"
    )
    assert paper_orders() == []


def test_the_claims_record_keeps_the_whole_outcome_and_never_clears_a_stored_hash() -> None:
    """The record before the post stores the signed order's hash; a later outcome without one (a
    refusal mapped without the hash, say) replaces the status and the result but keeps the hash."""
    from pm_arb_tasks.db import claims

    req = approved(request()).request  # its approval on record
    assert claims.claim(req, "paper").won
    assert claims.record(execution.signed_outcome(req, "paper", "0xsigned", now())) is False
    refused = result_for(req, "paper", TradeStatus.REJECTED, "venue refused", now())
    set_halt(True, "test")
    assert claims.record(refused) is True  # the record returns the halt flag as it read it
    set_halt(False, "")
    with session_scope() as session:
        row = session.get(OrderClaimRow, req.request_id)
        assert row is not None
        assert (row.status, row.order_hash) == ("rejected", "0xsigned")
        assert ExecutionResult.model_validate(row.result) == refused
        assert row.updated_at >= row.claimed_at
