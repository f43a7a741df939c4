"""Issues 4 and 5, "Done when": a scripted spot jump at the simulator, through the real pipeline.

Real worker processes (the Procfile's queues: oracle, markets, scan, risk, execute, persist) on
real Redis and PostgreSQL, every upstream the simulator over HTTP. Beat is not run: the test sends
beat's tasks itself (discovery, book polls, oracle polls, reconciliation, settlement), so what
happens when is decided here, not by a schedule.

- Paper (issue 4): after a jump pushed through `/sim/jump`, the markets whose books lag trade on
  paper, none of the fee-eaten ones is requested, risk keeps every limit, and the opportunity log
  has a reason for every opportunity that did not trade. The unclassified markets (one non-crypto,
  one crypto nothing can price) are, by design, stored and counted by discovery and never enter
  the scanner's universe: no book polled, no log row, no request.
- Live (issue 5): the same jump with PAPER_TRADING=false and a throwaway key: one signed order per
  approved request reaches the simulator's CLOB and fills, also when every execute message is
  delivered a second time; reconciliation follows each fill to CONFIRMED; after `/sim/resolve` +
  discovery + settlement the positions carry payout - cost - fees, as do `positions.pnl` and the
  P&L report, and the risk exposure is released.

Why the scenario is tuned as it is (each knob goes to the workers through the environment):
- VOL_FLOOR = VOL_CAP = the simulator's own volatility: the scanner prices with the sigma the
  simulator's books quote with, so the only edge is the book lag. A model mismatch would be edge
  too, and would trade before the jump; the test checks that nothing does.
- The jump's size is chosen per run (`choose_jump`) from the books the pipeline stored: the
  simulator's strikes, expiries and spot path follow the wall clock, so no fixed size reliably
  leaves both a market that clears the threshold and a fee-enabled one the fee pushes under it.
- Book lag 0 while warming up, 10 s from just before the jump (`/sim/lag`): the pre-jump scans see
  books in step with spot, so not even a market a few minutes from expiry finds an edge in ten
  seconds of drift; from the jump on, the venue's books quote the old spot for 10 s, the whole
  post-jump trade also on a loaded 2-core machine. BOOK_POLL_SECONDS = 120 keeps the stored books
  fresh enough to trade on without a beat polling them.
- TOTAL_EXPOSURE_PCT = 15 ($30 of the $200 bankroll), at least four requests of up to $20: the
  jump asks for more than fits, so the guardian has to cut and refuse, not wave everything through.
- OPPORTUNITY_LOG_SECONDS = 0: every scan logs every filtered opportunity, so the post-jump scan's
  reasons are in the log even when a pre-jump scan logged the same reason a moment earlier.
- TRADE_TTL_SECONDS = 15: the first order of a fresh worker can be slow on a busy machine; the
  deadline still applies, just not as a source of flakiness here.
- Redis DB 12 (venue area 10-12, the one no other module uses), flushed first by the stores
  helpers; its own fresh PostgreSQL schema per test. The module is in the conftest's HEAVY group:
  six workers for half a minute must not overlap the benchmark smoke or the chaos runs.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from pm_arb_tasks.celery_app import app
from pm_arb_tasks.db.models import (
    LiveTradeRow,
    MarketRow,
    OpportunityRow,
    OrderClaimRow,
    PaperTradeRow,
    PositionRow,
    RiskDecisionRow,
    RiskExposureRow,
)
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.fees import taker_fee_per_share
from pm_arb_tasks.domain.models import ExecutionResult, FeeSchedule, Market, MarketKind, Outcome, RiskDecision
from pm_arb_tasks.domain.pricing import MIN_RETURNS, fair_yes
from pm_arb_tasks.domain.risk_rules import RiskLimits
from pm_arb_tasks.services import positions, reporting
from pm_arb_tasks.services.scanning import SYMBOL_WIDE
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.sim.scenario import DEFAULT_SETTINGS, FEE_SCHEDULE
from pm_arb_tasks.sim.server import SimServer, running_sim
from pm_arb_tasks.state.market_data import get_books, tick_history, tracked_markets, tracked_token_ids
from pm_arb_tasks.tasks.pipeline import alert_outcome, execute_order, persist_outcome
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.marketdata import UPSTREAM_SETTINGS, control, sim_log
from tests.support.risk import exposure
from tests.support.venue import AREA, JUMP_REDIS_DB, live_stores, new_key
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
SYMBOL = "BTC"
SIM_VOL = str(DEFAULT_SETTINGS["annual_vol"])
BOOK_LAG_SECONDS = 10.0
TUNING = {
    "SYMBOLS": SYMBOL, "VOL_FLOOR": SIM_VOL, "VOL_CAP": SIM_VOL, "BOOK_POLL_SECONDS": "120",
    "OPPORTUNITY_LOG_SECONDS": "0", "TOTAL_EXPOSURE_PCT": "15", "TRADE_TTL_SECONDS": "15",
}  # fmt: skip
ROUNDING = Decimal("1e-6")  # USD: the 8-decimal money columns against exact products of fills
MARGIN = Decimal("0.005")  # prediction vs scan: seconds of spot drift and time decay, well inside this
# A market closer to its end moves more than MARGIN in a second of drift: no prediction is asserted on it.
PREDICTABLE = timedelta(hours=1)
MIN_REQUESTS = 4
SIM_FEES = FeeSchedule(rate=Decimal(str(FEE_SCHEDULE["rate"])), exponent=Decimal(str(FEE_SCHEDULE["exponent"])))
FEE_EATEN, COOLDOWN = "below threshold after fee", "cooldown"
UNPRICEABLE = ("window not open", "no strike price yet")
KEY = new_key()
ORACLE_SETTINGS = tuple(name for name in UPSTREAM_SETTINGS if name not in ("GAMMA_API_URL", "CLOB_API_URL"))


def now() -> datetime:
    return datetime.now(UTC)


# ---- the stack ----------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimServer]:
    with running_sim(seed=4, symbols=(SYMBOL,), settings={"book_lag_seconds": 0.0}) as server:
        yield server


@contextmanager
def paper_stores(sim_url: str) -> Iterator[dict[str, str]]:
    """A fresh schema and Redis DB, every upstream at the simulator, paper mode; yields the worker env
    (the conftest puts this process's environment back after the module)."""
    with fresh_schema(AREA) as url:
        flush_redis(JUMP_REDIS_DB)
        yield point_process_at(
            redis_db=JUMP_REDIS_DB, database_url=url, PAPER_TRADING="true",
            **{name: sim_url for name in UPSTREAM_SETTINGS}, **TUNING,
        )  # fmt: skip


def pipeline(env: dict[str, str]) -> tuple[Worker, ...]:
    """One worker per Procfile line that trades, on the Procfile's queues and pools."""
    return (
        Worker("oracle", "oracle", env, concurrency=2, pool="threads"),
        Worker("markets", "markets,ops,alert", env, concurrency=2, pool="threads"),
        Worker("scan", "scan", env),
        Worker("risk", "risk", env, concurrency=2),
        Worker("execute", "execute", env),
        Worker("persist", "persist,alert,ops", env, concurrency=2),
    )


def rows(model: type, *where: object) -> list:
    with session_scope() as session:
        return list(session.scalars(select(model).where(*where)))


def send(task: str) -> None:
    """What beat would send; the workers' routes put it on its queue."""
    app.send_task(task)


# ---- driving the scenario -------------------------------------------------------------------------


def scanned_after(moment: datetime) -> bool:
    """True once a scan with volatility ran after `moment`: such a scan logs at least the next,
    not yet open, Up/Down window (the simulator always lists one) under its own market id."""
    with session_scope() as session:
        query = select(func.count()).where(OpportunityRow.observed_at > moment, OpportunityRow.market_id != SYMBOL_WIDE)
        return bool(session.scalar(query))


def poll_until_scanned(after: datetime, what: str) -> None:
    """Oracle polls (the scan follows each poll whose price moved) until a full scan ran after `after`."""

    def polled() -> bool:
        if scanned_after(after):
            return True
        send("pm_arb.oracle.poll")
        return False

    wait_for(polled, timeout=30, interval=0.5, what=what)


def poll_books() -> None:
    """One book poll (beat's task), waited for until every tracked token's book is newer than the call."""
    asked, tokens = now(), tracked_token_ids()

    def stored() -> bool:
        books = get_books(tokens)
        return len(books) == len(tokens) and all(book.observed_at >= asked for book in books.values())

    send("pm_arb.markets.poll_books")
    wait_for(stored, timeout=30, what="a fresh book for every tracked token")


def warm_up() -> datetime:
    """Discovery, one book poll, enough ticks for a volatility, one full scan; returns the first tick's time.

    Each step through the workers' own tasks, each waited for in what it leaves behind."""
    send("pm_arb.markets.discover")
    wait_for(tracked_token_ids, timeout=30, what="discovery to track the simulator's markets")
    poll_books()
    started = now() - timedelta(seconds=1)
    for count in range(1, MIN_RETURNS + 2):  # MIN_RETURNS returns take one tick more
        send("pm_arb.oracle.poll")
        wait_for(lambda n=count: len(tick_history(SYMBOL, started)) >= n, timeout=15, what=f"oracle tick {count}")
    poll_until_scanned(started, "a pre-jump scan with volatility")
    return tick_history(SYMBOL, started)[0].observed_at


@dataclass(frozen=True)
class Jump:
    """A spot target and what it should do to the stored books, worked out before it is pushed."""

    to: Decimal
    clears: frozenset[tuple[str, str]]  # (market, outcome) whose net edge clears the threshold
    eaten: frozenset[tuple[str, str]]  # fee-enabled: gross edge clears, the fee takes it under
    edge: frozenset[tuple[str, str]]  # any gross edge at all (an opportunity the log must explain)


def predict(markets: list[Market], spot: Decimal, at: datetime, min_edge: Decimal) -> Jump:
    """Edges of every strike market's outcomes at `spot` against the stored books.

    The expectation is computed here from the pricing formula and the simulator's own fee schedule,
    not by the scanner's evaluation, so breaking the scanner's fee handling cannot move it."""
    sigma = Decimal(SIM_VOL)
    books = get_books([token for m in markets for token in (m.yes_token_id, m.no_token_id)])
    clears, eaten, edge = set(), set(), set()
    for market in markets:
        if market.kind is not MarketKind.STRIKE or market.resolves_at is None or market.resolves_at < at + PREDICTABLE:
            continue
        yes = fair_yes(market, spot, sigma, at)
        for outcome, fair in ((Outcome.YES, yes), (Outcome.NO, 1 - yes)):
            book = books.get(market.token_for(outcome))
            if book is None or book.best_ask is None:
                continue
            ask = book.best_ask.price
            gross = fair - ask
            fee = taker_fee_per_share(ask, SIM_FEES if market.fees_enabled else None)
            key = (market.market_id, outcome.value)
            if gross > MARGIN:
                edge.add(key)
            if gross - fee >= min_edge + MARGIN:
                clears.add(key)
            elif market.fees_enabled and gross >= min_edge + MARGIN and gross - fee <= min_edge - MARGIN:
                eaten.add(key)
    return Jump(spot, frozenset(clears), frozenset(eaten), frozenset(edge))


def choose_jump(sim_url: str, min_trades: int = MIN_REQUESTS) -> Jump:
    """From now on the venue's books lag; then the smallest move (up or down, 0.1 % steps) after
    which at least `min_trades` outcomes clear the threshold and at least one fee-enabled outcome
    is fee-eaten, both with a margin. Against books polled just now: the ones the post-jump scan
    reads will have moved only by a second of the (lagged) path."""
    control(sim_url, "lag", seconds=BOOK_LAG_SECONDS)
    poll_books()
    spot = tick_history(SYMBOL, now() - timedelta(minutes=5))[-1].price
    markets = list(tracked_markets(SYMBOL))
    min_edge = get_settings().min_edge
    for tenths, sign in itertools.product(range(1, 31), (1, -1)):
        jump = predict(markets, spot * (1 + sign * Decimal(tenths) / 1000), now(), min_edge)
        if len(jump.clears) >= min_trades and jump.eaten:
            return jump
    raise AssertionError("no jump of up to 3 % leaves both trades and a fee-eaten market: retune the scenario")


def push_jump(sim_url: str, jump: Jump) -> datetime:
    """The jump through the control endpoint; then, as beat would, a book poll (the venue's books,
    still quoting the old spot for `BOOK_LAG_SECONDS`), and the oracle poll that sees the jump and
    starts the scan."""
    pushed = now()
    control(sim_url, "jump", symbol=SYMBOL, to=float(jump.to))
    poll_books()
    poll_until_scanned(pushed, "the post-jump scan")
    return pushed


def scan_again(table: type[PaperTradeRow] | type[LiveTradeRow], pushed: datetime) -> None:
    """A second post-jump scan, inside the cooldown (the books it reads still lag), and whatever it
    asked for decided, so that nothing is still in flight when the test looks."""
    poll_until_scanned(now(), "a second post-jump scan, inside the cooldown")
    wait_for(decided(table, pushed), timeout=30, what="every post-jump request decided")


def decided(table: type[PaperTradeRow] | type[LiveTradeRow], after: datetime) -> Callable[[], bool]:
    """A probe: every request emitted after `after` has a risk decision, every approved one a trade row."""

    def probe() -> bool:
        emitted = {
            o.request_id for o in rows(OpportunityRow, OpportunityRow.emitted, OpportunityRow.observed_at > after)
        }
        decisions = rows(RiskDecisionRow, RiskDecisionRow.request_id.in_(emitted))
        traded = {t.request_id for t in rows(table)}
        return (
            bool(emitted)
            and len(decisions) == len(emitted)
            and {d.request_id for d in decisions if d.approved} <= traded
        )

    return probe


# ---- what the scan and the guardian did ---------------------------------------------------------


def post_jump_log(after: datetime) -> dict[tuple[str, str | None], set[str]]:
    """(market, outcome or None) -> the reasons logged after the jump."""
    found: dict[tuple[str, str | None], set[str]] = {}
    for row in rows(OpportunityRow, OpportunityRow.observed_at > after):
        found.setdefault((row.market_id, row.outcome), set()).add(row.reason)
    return found


def assert_scan_explains_the_jump(jump: Jump, pushed: datetime, first_tick: datetime) -> None:
    """Requests on the lagging markets, none on the fee-eaten or unclassified ones, a reason for every
    opportunity that did not trade."""
    before = rows(OpportunityRow, OpportunityRow.emitted, OpportunityRow.observed_at <= pushed)
    assert before == [], "a market traded before the jump: the edge is not the lag's"

    log = post_jump_log(pushed)
    emitted = {key for key, reasons in log.items() if "emitted" in reasons}
    assert jump.clears <= emitted, f"lagging outcomes not requested: {sorted(jump.clears - emitted)}"
    assert jump.eaten and not jump.eaten & emitted, "a fee-eaten outcome was requested"
    for key in jump.eaten:
        assert log[key] == {FEE_EATEN}, (key, log.get(key))
    eaten = rows(OpportunityRow, OpportunityRow.reason == FEE_EATEN, OpportunityRow.observed_at > pushed)
    for row in eaten:  # the logged numbers say why: a gross edge the fee took under the threshold
        assert row.fee > 0 and row.fair_value - row.ask >= get_settings().min_edge > row.net_edge, row
        assert row.request_id is None

    cooled = {key for key, reasons in log.items() if COOLDOWN in reasons}
    assert cooled and cooled <= emitted, "the second post-jump scan logs the cooldown of what the first emitted"

    # Every market the scanner looked at: an opportunity it did not take has a logged reason; a
    # market it cannot price (an Up/Down window not open yet, or opened before our first tick) too.
    for market in tracked_markets(SYMBOL):
        market_wide = log.get((market.market_id, None), set())
        if market.kind is MarketKind.UPDOWN and market.window_start is not None:
            if market.window_start > pushed or market.window_start < first_tick:
                assert market_wide & set(UNPRICEABLE), (market.slug, market_wide)
            continue
        for outcome in (Outcome.YES, Outcome.NO):
            key = (market.market_id, outcome.value)
            if key in jump.edge:
                assert log.get(key), f"{market.slug} {outcome.value}: an edge with no reason logged"

    # The unclassified markets (the non-crypto one, the crypto one nothing can price) are stored and
    # counted by discovery, never put in the scanner's universe: no book polled, nothing logged or asked.
    unclassified = rows(MarketRow, MarketRow.kind == MarketKind.UNCLASSIFIED.value)
    assert len(unclassified) == 2 and all(m.symbol is None for m in unclassified)
    odd = {m.market_id for m in unclassified}
    tokens = set(tracked_token_ids())
    assert not odd & {m.market_id for m in tracked_markets(SYMBOL)}
    assert not tokens & {t for m in unclassified for t in (m.yes_token_id, m.no_token_id)}
    assert not odd & {o.market_id for o in rows(OpportunityRow)}
    assert not odd & {d.market_id for d in rows(RiskDecisionRow)}


def assert_risk_kept_its_limits(
    table: type[PaperTradeRow] | type[LiveTradeRow], pushed: datetime
) -> list[RiskDecisionRow]:
    """Every decision within the per-trade, per-market and total limits, and more asked than fitted.
    Returns the approved decisions."""
    limits = RiskLimits.from_settings(get_settings())
    decisions = rows(RiskDecisionRow)
    approved = [d for d in decisions if d.approved]
    assert approved and sum(d.requested_amount for d in decisions) > limits.total_limit, (
        "the jump asked for no more than fits"
    )
    assert all(d.decided_at > pushed for d in decisions)
    assert all(d.reason for d in decisions if not d.approved), "a refusal without a reason"
    assert all(0 < d.approved_amount <= min(d.requested_amount, limits.max_trade) for d in approved)
    per_market: dict[str, Decimal] = {}
    for d in approved:
        per_market[d.market_id] = per_market.get(d.market_id, Decimal(0)) + d.approved_amount
    assert max(per_market.values()) <= limits.position_limit
    assert sum(per_market.values()) <= limits.total_limit
    mode = get_settings().trading_mode
    for held in rows(RiskExposureRow, RiskExposureRow.mode == mode):
        assert held.amount <= (limits.total_limit if held.market_id == "*" else limits.position_limit)
    trades = {t.request_id: t for t in rows(table)}
    assert set(trades) == {d.request_id for d in approved}, "an approved request without its one trade row"
    assert all(trades[d.request_id].requested_amount == d.approved_amount for d in approved)
    return approved


def assert_fills_were_lagging(sim: SimServer, trades: list[PaperTradeRow] | list[LiveTradeRow]) -> None:
    """Each fill was at a price the simulator's own fair value at the moment of the fill beats by
    the threshold after the fee: the book it hit had not repriced yet."""
    min_edge = get_settings().min_edge
    checked = 0
    for trade in trades:
        sim_market = sim.scenario.market(trade.market_id)
        assert sim_market is not None and trade.filled_at is not None
        if sim_market.end < trade.filled_at + PREDICTABLE:
            continue  # a second between the oracle tick and the fill moves such a market too much
        checked += 1
        with sim.scenario.lock:  # the path the simulator's threads extend
            yes = Decimal(repr(sim.scenario.fair_yes(sim_market, trade.filled_at, lag=0.0)))
        fair = yes if trade.outcome == Outcome.YES.value else 1 - yes
        paid = trade.fill_price + trade.fee / trade.filled_amount
        assert fair - paid >= min_edge - 2 * MARGIN, (sim_market.slug, trade.outcome, fair, paid)
    assert checked


# ---- issue 4: paper ---------------------------------------------------------------------------------


def test_paper_a_jump_trades_the_lagging_markets_and_explains_every_skip(sim: SimServer) -> None:
    with paper_stores(sim.url) as env, running(*pipeline(env)):
        first_tick = warm_up()
        jump = choose_jump(sim.url)
        pushed = push_jump(sim.url, jump)
        wait_for(decided(PaperTradeRow, pushed), timeout=30, what="every post-jump request decided and executed")
        scan_again(PaperTradeRow, pushed)

        assert_scan_explains_the_jump(jump, pushed, first_tick)
        approved = assert_risk_kept_its_limits(PaperTradeRow, pushed)
        trades = rows(PaperTradeRow)
        assert {t.status for t in trades} == {"filled"}
        assert all(t.quantity > 0 and t.entry_price <= t.max_price for t in trades)
        requested = {(o.market_id, o.outcome) for o in rows(OpportunityRow, OpportunityRow.emitted)}
        assert {(t.market_id, t.outcome) for t in trades} <= requested
        assert len(trades) == len(approved)
        assert_fills_were_lagging(sim, trades)


# ---- issue 5: live ----------------------------------------------------------------------------------


def reconciled() -> bool:
    """A probe: one reconciliation (beat's task) sent, True once every fill is confirmed on chain."""
    trades = rows(LiveTradeRow)
    if all(t.settlement == "confirmed" for t in trades):
        return True
    send("pm_arb.ops.reconcile")
    return False


def assert_one_order_per_request(sim_url: str, approved: list[RiskDecisionRow]) -> list[LiveTradeRow]:
    """The venue's own log: one post and one placed order per approved request, each the order of
    that request's one filled row. Returns the rows."""
    trades = rows(LiveTradeRow)
    posts, orders = sim_log(sim_url, "clob_post"), sim_log(sim_url, "clob_order")
    assert (len(posts), len(orders)) == (len(approved), len(approved)), "posts and placed orders per request"
    assert {t.status for t in trades} == {"filled"}, [(t.status, t.error_message) for t in trades]
    assert len(trades) == len(approved)
    assert sorted(o["order_id"] for o in orders) == sorted(t.order_id for t in trades)
    assert {o["status"] for o in orders} == {"MATCHED"}
    assert all(t.order_id == t.order_hash and t.venue_trade_ids and t.filled_amount > 0 for t in trades)
    return trades


def deliver_again(executor: Worker, approved: list[RiskDecisionRow]) -> None:
    """Every approved decision's execute message once more, with the rest of its chain, inside its
    deadline: what Redis does after a visibility timeout, or a chain step sent twice. The executor
    must find its claim and ask the venue about the stored hash instead of posting."""
    task_ids = []
    for decision in approved:
        with session_scope() as session:
            claim = session.get_one(OrderClaimRow, decision.request_id)
            request = ExecutionResult.model_validate(claim.result).request
        again = RiskDecision(
            request=request,
            approved=True,
            reason=decision.reason,
            approved_amount=decision.approved_amount,
            decided_at=decision.decided_at,
        )
        task_ids.append(uuid.uuid4().hex)
        execute_order.apply_async(
            args=[again.model_dump(mode="json")], task_id=task_ids[-1], link=persist_outcome.s() | alert_outcome.s()
        )
    wait_for(
        lambda: all(f"pm_arb.execute.order[{task_id}] succeeded" in executor.log() for task_id in task_ids),
        timeout=30, what="the second delivery of every approved request",
    )  # fmt: skip


def resolve_all(sim_url: str) -> dict[str, str]:
    """Resolve every held market at the venue, the first one for us and the others against us;
    then discovery (learning the winners from Gamma) and settlement, beat's tasks both.
    Returns the winner per market."""
    held = sorted(rows(PositionRow, PositionRow.mode == "live"), key=lambda p: p.market_id)
    winners = {}
    for index, position in enumerate(held):
        against = Outcome.NO.value if position.outcome == Outcome.YES.value else Outcome.YES.value
        winners[position.market_id] = position.outcome if index == 0 else against
        control(sim_url, "resolve", condition_id=position.market_id, winner=winners[position.market_id])
    send("pm_arb.markets.discover")
    wait_for(
        lambda: all(m.winning_outcome for m in rows(MarketRow, MarketRow.market_id.in_(winners))),
        timeout=30, what="discovery to learn every resolution from Gamma",
    )  # fmt: skip
    send("pm_arb.ops.settle")
    wait_for(
        lambda: all(p.status == "settled" for p in rows(PositionRow, PositionRow.mode == "live")),
        timeout=30, what="settlement of every position",
    )  # fmt: skip
    return winners


def assert_pnl(trades: list[LiveTradeRow], winners: dict[str, str]) -> None:
    """Realized P&L per position = payout - cost - fees, cost and fees taken from the fills
    themselves; the same total in `positions.pnl` and in the P&L report. Money columns keep 8
    decimals and a VWAP times a size has more, hence `ROUNDING` between the two sources."""
    fills = {t.market_id: t for t in trades}
    assert len(fills) == len(trades)  # one trade per market: the guardian's cooldown
    total = Decimal(0)
    for position in rows(PositionRow, PositionRow.mode == "live"):
        fill = fills[position.market_id]
        cost = fill.filled_amount * fill.fill_price
        assert (position.outcome, position.quantity, position.fees) == (fill.outcome, fill.filled_amount, fill.fee)
        assert abs(position.cost - cost) < ROUNDING
        payout = position.quantity if winners[position.market_id] == position.outcome else Decimal(0)
        assert position.realized_pnl == payout - position.cost - position.fees
        assert abs(position.realized_pnl - (payout - cost - fill.fee)) < ROUNDING
        total += position.realized_pnl
    assert positions.pnl("live").realized == total
    report = reporting.report_for_days(1).total
    assert (report.unrealized, report.filled, report.fees) == (0, len(trades), sum(t.fee for t in trades))
    assert abs(report.realized - total) < ROUNDING * len(trades)
    assert exposure(mode="live") == 0, "a resolved market still holds risk exposure"


def test_live_a_jump_orders_once_per_request_reconciles_settles_and_reports(sim: SimServer) -> None:
    sim.scenario.settings["settlement_delay_seconds"] = 1.0  # MATCHED -> CONFIRMED at the venue
    oracles = {name: sim.url for name in ORACLE_SETTINGS}  # live_stores points Gamma and the CLOB at it
    with (
        live_stores(sim.url, KEY, redis_db=JUMP_REDIS_DB, **oracles, **TUNING) as env,
        running(*pipeline(env)) as stack,
    ):
        first_tick = warm_up()
        jump = choose_jump(sim.url)
        pushed = push_jump(sim.url, jump)
        wait_for(decided(LiveTradeRow, pushed), timeout=30, what="every post-jump request decided and placed")
        deliver_again(next(w for w in stack if w.name == "execute"), [d for d in rows(RiskDecisionRow) if d.approved])
        scan_again(LiveTradeRow, pushed)

        assert_scan_explains_the_jump(jump, pushed, first_tick)
        approved = assert_risk_kept_its_limits(LiveTradeRow, pushed)
        trades = assert_one_order_per_request(sim.url, approved)
        assert_fills_were_lagging(sim, trades)

        wait_for(reconciled, timeout=30, interval=1.0, what="reconciliation to confirm every fill")
        assert len(sim_log(sim.url, "clob_post")) == len(approved), "reconciliation posted an order"
        winners = resolve_all(sim.url)
        assert_pnl(rows(LiveTradeRow), winners)
        assert len(sim_log(sim.url, "clob_post")) == len(approved)
