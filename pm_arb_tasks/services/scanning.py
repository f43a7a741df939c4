"""The scan use case: for the symbols whose spot moved, price every tracked market, keep the ones
whose net edge clears the threshold, and send each as a trade request down the chain.

Reads: the latest oracle tick (never a stale one), the volatility of the stored history, the
tracked markets and their books (never stale ones), all from Redis. Every opportunity seen is
logged with its reason; a filtered one at most once per (market, outcome, reason) per
`OPPORTUNITY_LOG_SECONDS`, so a market that stays fee-eaten for an hour is not a row a second.
One trade request per (market, outcome) per cooldown, claimed atomically in Redis so that
several scan workers cannot both emit it. One bad market never stops the scan of the others.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import insert, select

from pm_arb_tasks.db.models import OpportunityRow, RiskExposureRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.edge import Evaluation, Reason, SizingStrategy, evaluate_outcome
from pm_arb_tasks.domain.fees import schedule_for
from pm_arb_tasks.domain.models import Book, Market, OrderType, Outcome, Tick, TradeRequest, new_id
from pm_arb_tasks.domain.pricing import Unpriceable, ewma_volatility, fair_yes_float
from pm_arb_tasks.failures import log_failure
from pm_arb_tasks.risk.book import TOTAL
from pm_arb_tasks.services import dispatch
from pm_arb_tasks.settings import Settings, get_settings
from pm_arb_tasks.state import market_data
from pm_arb_tasks.state.market_data import BookTop
from pm_arb_tasks.state.redis_client import get_redis

log = logging.getLogger(__name__)
ZERO = Decimal(0)
COOLDOWN_KEY = "pm_arb:cooldown:{market_id}:{outcome}"
OPPORTUNITY_LOG_KEY = "pm_arb:opplog:{symbol}:{market_id}:{outcome}:{reason}"
VOLATILITY_KEY = "pm_arb:vol:{symbol}"
VOLATILITY_REFRESH_SECONDS = 10  # an EWMA with a 10-minute half-life barely moves in 10 s
SYMBOL_WIDE = "*"  # market id of a log row about a whole symbol (stale oracle, no volatility)
Send = Callable[[TradeRequest], None]


@dataclass(frozen=True)
class ScanParams:
    """The settings the per-market evaluation needs, read once per scan."""

    min_edge: Decimal
    max_trade: Decimal
    position_limit: Decimal
    strategy: SizingStrategy
    bankroll: Decimal
    book_max_age: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> ScanParams:
        return cls(
            min_edge=settings.min_edge,
            max_trade=settings.max_trade_size,
            position_limit=settings.initial_bankroll * settings.position_limit_pct / 100,
            strategy=settings.sizing_strategy,
            bankroll=settings.initial_bankroll,
            book_max_age=market_data.book_stale_after(),
        )


class Screened(NamedTuple):
    """A market after the float screen: a market-level skip reason, or its float fair value, the
    outcomes that need the exact evaluation, those plainly below the threshold (for the log), and
    how many were plainly without edge (counted only)."""

    market: Market
    skip: Reason | None = None
    prob_f: float = 0.0
    outcomes: tuple[Outcome, ...] = ()
    no_edge: int = 0
    below: tuple[Evaluation, ...] = ()


class MarketScan(NamedTuple):
    """One market looked at: a market-level skip reason, or the outcomes evaluated exactly, and
    the number of outcomes screened out (ask plainly above fair: counted only)."""

    market: Market
    skip: Reason | None = None
    evaluations: tuple[Evaluation, ...] = ()
    no_edge: int = 0


# The float screen only settles outcomes that are further than float noise from a boundary (no
# edge / below the threshold before any fee); anything closer, stale or unknown is evaluated
# exactly in Decimal against the full book.
SCREEN_MARGIN = 1e-9


def screen_market(
    market: Market,
    *,
    spot: float,
    sigma: float,
    now: datetime,
    window_open: Decimal | None,
    tops: Mapping[str, BookTop],
    fresh_after: float,
    min_edge: float,
) -> Screened:
    """Price one market in float and keep the outcomes that might have an edge; pure.

    Most markets are priced at or above fair on both sides, so one comparison per side settles
    them without reading or parsing their books. `fresh_after`: epoch seconds a top must be newer.
    """
    if not (market.active and market.accepting_orders) or market.closed:
        return Screened(market, Reason.CLOSED)
    try:
        prob_f = fair_yes_float(market, spot, sigma, now, window_open)
    except Unpriceable as skip:
        return Screened(market, skip.reason)
    outcomes, below = [], []
    no_edge = 0
    for outcome, token, outcome_f in (
        (Outcome.YES, market.yes_token_id, prob_f), (Outcome.NO, market.no_token_id, 1.0 - prob_f)
    ):
        top = tops.get(token)
        if top is None or top.observed_at <= fresh_after:
            outcomes.append(outcome)  # the exact pass reads the book and says "stale data"
            continue
        gross = outcome_f - top.best_ask if top.best_ask is not None else -1.0
        if gross < -SCREEN_MARGIN:
            no_edge += 1
        elif SCREEN_MARGIN < gross < min_edge - SCREEN_MARGIN:
            prob, ask = Decimal(repr(outcome_f)), Decimal(repr(top.best_ask))
            below.append(Evaluation(outcome, prob, Reason.BELOW_THRESHOLD, ask=ask, net_edge=prob - ask))
        else:
            outcomes.append(outcome)
    return Screened(market, None, prob_f, tuple(outcomes), no_edge, tuple(below))


def evaluate_screened(
    screened: Screened, *, books: Mapping[str, Book], now: datetime, exposure: Decimal, params: ScanParams
) -> MarketScan:
    """The exact Decimal evaluation of the outcomes the screen kept, against their full books."""
    market = screened.market
    if screened.skip is not None or not screened.outcomes:
        return MarketScan(market, screened.skip, (), screened.no_edge)
    prob_yes = Decimal(repr(screened.prob_f))
    evaluations = []
    for outcome in screened.outcomes:
        prob = prob_yes if outcome is Outcome.YES else 1 - prob_yes
        book = books.get(market.token_for(outcome))
        if book is None or now - book.observed_at > params.book_max_age:
            evaluations.append(Evaluation(outcome, prob, Reason.STALE))
            continue
        evaluations.append(
            evaluate_outcome(
                outcome=outcome, prob=prob, asks=book.asks, schedule=schedule_for(market),
                min_edge=params.min_edge, tick=book.tick_size or market.tick_size, max_trade=params.max_trade,
                room=params.position_limit - exposure,
                min_order_size=book.min_order_size or market.min_order_size,
                strategy=params.strategy, bankroll=params.bankroll,
            )
        )
    return MarketScan(market, None, tuple(evaluations), screened.no_edge)


def top_of(book: Book) -> BookTop:
    return BookTop(float(book.best_ask.price) if book.best_ask else None, book.observed_at.timestamp())


def evaluate_market(
    market: Market,
    *,
    spot: float,
    sigma: float,
    now: datetime,
    window_open: Decimal | None,
    books: Mapping[str, Book],
    exposure: Decimal,
    params: ScanParams,
) -> MarketScan:
    """Screen and evaluate one market with its books in memory (tests and the benchmark)."""
    tokens = (market.yes_token_id, market.no_token_id)
    tops = {token: top_of(books[token]) for token in tokens if token in books}
    screened = screen_market(
        market, spot=spot, sigma=sigma, now=now, window_open=window_open, tops=tops,
        fresh_after=(now - params.book_max_age).timestamp(), min_edge=float(params.min_edge),
    )
    scanned = evaluate_screened(screened, books=books, now=now, exposure=exposure, params=params)
    return scanned._replace(evaluations=screened.below + scanned.evaluations)


@dataclass
class ScanReport:
    """What one scan did, for the task's result and the logs."""

    markets: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    requests: list[TradeRequest] = field(default_factory=list)
    logged: int = 0
    errors: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "markets": self.markets, "reasons": dict(self.reasons), "emitted": len(self.requests),
            "logged": self.logged, "errors": self.errors, "seconds": round(self.seconds, 4),
        }


def scan(
    symbols: Sequence[str], now: datetime, *, tick_at: datetime | None = None, send: Send | None = None
) -> ScanReport:
    """Scan `symbols` at `now`; `tick_at` is the poll that asked for it (too old: nothing to do)."""
    started = time.perf_counter()
    settings = get_settings()
    send = send or dispatch.dispatch
    report = ScanReport()
    rows: list[dict[str, object]] = []
    if tick_at is not None and now - tick_at >= timedelta(seconds=settings.trade_ttl_seconds):
        report.reasons["late scan"] += 1
        return report
    params = ScanParams.from_settings(settings)
    scanner = _SymbolScanner(settings, params, now, send, report, rows)
    for symbol in symbols:
        try:
            scanner.scan_symbol(symbol)
        except Exception:
            report.errors += 1
            log_failure(log, "scan of %s failed; other symbols continue", symbol)
    _log_opportunities(rows, report, settings.opportunity_log_seconds, now)
    report.seconds = time.perf_counter() - started
    log.info("scan %s: %s", ",".join(symbols), report.as_dict())
    return report


class _SymbolScanner:
    """The I/O around the pure screen and evaluation: reads, cooldown claims, dispatch, log rows."""

    def __init__(
        self, settings: Settings, params: ScanParams, now: datetime, send: Send, report: ScanReport,
        rows: list[dict[str, object]],
    ):
        self.settings, self.params, self.now, self.send = settings, params, now, send
        self.report, self.rows = report, rows
        self._exposures: dict[str, Decimal] | None = None

    def scan_symbol(self, symbol: str) -> None:
        tick = market_data.fresh_tick(symbol, self.now)
        if tick is None or tick.observed_at + timedelta(seconds=self.settings.trade_ttl_seconds) <= self.now:
            self._skip_symbol(symbol, Reason.STALE)
            return
        sigma = symbol_volatility(symbol, self.now, self.settings)
        if sigma is None:
            self._skip_symbol(symbol, Reason.NO_VOLATILITY)
            return
        markets = market_data.markets_for(symbol, self.now)
        self.report.markets += len(markets)
        tops = market_data.get_book_tops([t for m in markets for t in (m.yes_token_id, m.no_token_id) if t])
        fresh_after = (self.now - self.params.book_max_age).timestamp()
        spot, sigma_f, min_edge = float(tick.price), float(sigma), float(self.params.min_edge)
        window_opens: dict[datetime, Decimal | None] = {}
        kept: list[Screened] = []
        for market in markets:
            try:
                screened = screen_market(
                    market, spot=spot, sigma=sigma_f, now=self.now, tops=tops, fresh_after=fresh_after,
                    min_edge=min_edge, window_open=self._window_open(market, symbol, window_opens),
                )
            except Exception:
                self.report.errors += 1
                log_failure(log, "scan of market %s failed; other markets continue", market.market_id)
                continue
            if screened.no_edge:
                self.report.reasons[Reason.NO_EDGE.value] += screened.no_edge
            if screened.skip is not None:
                self._record(market.market_id, symbol, None, screened.skip)
            for evaluation in screened.below:
                self._record(market.market_id, symbol, evaluation, evaluation.reason)
            if screened.outcomes:
                kept.append(screened)
        books = market_data.get_books([s.market.token_for(o) for s in kept for o in s.outcomes])
        candidates: list[tuple[Market, Evaluation]] = []
        for screened in kept:
            try:
                candidates += self._evaluate(screened, symbol, books)
            except Exception:
                self.report.errors += 1
                log_failure(log, "scan of market %s failed; other markets continue", screened.market.market_id)
        if candidates:
            self._emit_all(candidates, tick)

    def _window_open(self, market: Market, symbol: str, cache: dict[datetime, Decimal | None]) -> Decimal | None:
        """The oracle price at an open Up/Down window's start (one read per distinct start)."""
        start = market.window_start
        if start is None or market.strike is not None or start > self.now:
            return None
        if start not in cache:
            found = market_data.price_at(symbol, start)
            cache[start] = found.price if found else None
        return cache[start]

    def _evaluate(self, screened: Screened, symbol: str, books: dict[str, Book]) -> list[tuple[Market, Evaluation]]:
        """Record what the exact evaluation filtered; return what it would emit."""
        market = screened.market
        result = evaluate_screened(screened, books=books, now=self.now, exposure=ZERO, params=self.params)
        if any(e.reason is Reason.EMITTED for e in result.evaluations):
            exposure = self.exposures().get(market.market_id, ZERO)
            if exposure:
                result = evaluate_screened(screened, books=books, now=self.now, exposure=exposure, params=self.params)
        emit = []
        for evaluation in result.evaluations:
            if evaluation.reason is Reason.EMITTED:
                emit.append((market, evaluation))
            else:
                self._record(market.market_id, symbol, evaluation, evaluation.reason)
        return emit

    def _emit_all(self, candidates: list[tuple[Market, Evaluation]], tick: Tick) -> None:
        """Claim every candidate's cooldown in one round trip, then send the ones that won it."""
        claims = claim_cooldowns(
            [(market.market_id, e.outcome) for market, e in candidates], self.settings.market_cooldown_seconds
        )
        for (market, evaluation), won in zip(candidates, claims, strict=True):
            reason, request = Reason.COOLDOWN, None
            if won:
                reason, request = self._emit(market, tick, evaluation)
            self._record(market.market_id, tick.symbol, evaluation, reason, request)

    def _emit(self, market: Market, tick: Tick, evaluation: Evaluation) -> tuple[Reason, TradeRequest]:
        assert evaluation.sizing is not None and evaluation.limit is not None
        request = TradeRequest(
            opportunity_id=new_id(),
            market_id=market.market_id,
            token_id=market.token_for(evaluation.outcome),
            outcome=evaluation.outcome,
            amount=evaluation.sizing.amount,
            min_amount=evaluation.sizing.min_amount,
            limit_price=evaluation.limit,
            fair_value=evaluation.prob,
            expected_edge=evaluation.net_edge,
            expected_fee=evaluation.fee,
            order_type=OrderType(self.settings.order_type),
            tick_at=tick.observed_at,
            deadline=tick.observed_at + timedelta(seconds=self.settings.trade_ttl_seconds),
        )
        try:
            self.send(request)
        except Exception:
            log_failure(log, "could not dispatch request %s", request.request_id)
            release_cooldown(market.market_id, evaluation.outcome)
            return Reason.DISPATCH_FAILED, request
        self.report.requests.append(request)
        return Reason.EMITTED, request

    def exposures(self) -> dict[str, Decimal]:
        """Open exposure per market from the risk book, read once per scan and only when needed."""
        if self._exposures is None:
            with session_scope() as session:
                found = session.execute(
                    select(RiskExposureRow.market_id, RiskExposureRow.amount).where(
                        RiskExposureRow.mode == get_settings().trading_mode, RiskExposureRow.market_id != TOTAL,
                        RiskExposureRow.amount > 0,
                    )
                )
                self._exposures = {market_id: amount for market_id, amount in found}
        return self._exposures

    def _skip_symbol(self, symbol: str, reason: Reason) -> None:
        self._record(SYMBOL_WIDE, symbol, None, reason)

    def _record(
        self, market_id: str, symbol: str, evaluation: Evaluation | None, reason: Reason,
        request: TradeRequest | None = None,
    ) -> None:
        self.report.reasons[reason.value] += 1
        if reason is Reason.NO_EDGE:
            return
        key = None
        if reason is not Reason.EMITTED:
            outcome = evaluation.outcome.value if evaluation else None
            key = OPPORTUNITY_LOG_KEY.format(symbol=symbol, market_id=market_id, outcome=outcome, reason=reason.value)
            if LOG_THROTTLE.recent(key, self.now):
                return
        self.rows.append(
            {
                "throttle_key": key,
                "opportunity_id": request.opportunity_id if request else new_id(),
                "market_id": market_id,
                "symbol": symbol,
                "outcome": evaluation.outcome.value if evaluation else None,
                "fair_value": evaluation.prob if evaluation else None,
                "ask": evaluation.ask if evaluation else None,
                "fee": evaluation.fee if evaluation else None,
                "net_edge": evaluation.net_edge if evaluation else None,
                "emitted": reason is Reason.EMITTED,
                "reason": reason.value,
                "request_id": request.request_id if request else None,
                "observed_at": self.now,
            }
        )


def symbol_volatility(symbol: str, now: datetime, settings: Settings) -> Decimal | None:
    """Annualised sigma of `symbol`, recomputed from the stored ticks at most every few seconds."""
    redis = get_redis()
    key = VOLATILITY_KEY.format(symbol=symbol)
    cached = redis.get(key)
    if cached:
        return Decimal(cached)
    lookback = min(6 * settings.vol_halflife_seconds, market_data.HISTORY_SECONDS)
    history = market_data.tick_history(symbol, now - timedelta(seconds=lookback), now)
    sigma = ewma_volatility(
        [(t.observed_at, t.price) for t in history], settings.vol_halflife_seconds, settings.vol_floor,
        settings.vol_cap,
    )
    if sigma is not None:
        redis.set(key, str(sigma), ex=VOLATILITY_REFRESH_SECONDS)
    return sigma


def claim_cooldowns(keys: Sequence[tuple[str, Outcome]], seconds: float) -> list[bool]:
    """For each (market, outcome): True if this caller is the first emitter in the cooldown period,
    across all scan workers (SET NX with expiry, one pipeline)."""
    if seconds <= 0:
        return [True] * len(keys)
    pipe = get_redis().pipeline(transaction=False)
    for market_id, outcome in keys:
        pipe.set(COOLDOWN_KEY.format(market_id=market_id, outcome=outcome.value), "1", nx=True, px=int(seconds * 1000))
    return [bool(won) for won in pipe.execute()]


def release_cooldown(market_id: str, outcome: Outcome) -> None:
    """Give the (market, outcome) back when its request never left (the next tick may retry)."""
    get_redis().delete(COOLDOWN_KEY.format(market_id=market_id, outcome=outcome.value))


class LogThrottle:
    """This process's memory of which filtered opportunities were logged lately, so a market that
    stays filtered costs no Redis command per tick; Redis (SET NX) still decides across processes."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def recent(self, key: str, now: datetime) -> bool:
        until = self._until.get(key)
        return until is not None and now.timestamp() < until

    def remember(self, keys: Sequence[str], now: datetime, period: float) -> None:
        stamp = now.timestamp()
        if len(self._until) > self.MAX_KEYS:
            self._until = {k: u for k, u in self._until.items() if u > stamp}
        for key in keys:
            self._until[key] = stamp + period

    def clear(self) -> None:
        self._until.clear()


LOG_THROTTLE = LogThrottle()


def _log_opportunities(rows: list[dict[str, object]], report: ScanReport, period: float, now: datetime) -> None:
    """Write emitted rows always, filtered ones at most once per key and period; never raise."""
    if not rows:
        return
    try:
        if period > 0:
            keys = [row["throttle_key"] for row in rows if row["throttle_key"]]
            pipe = get_redis().pipeline(transaction=False)
            for key in keys:
                pipe.set(key, "1", nx=True, px=int(period * 1000))
            won = {key for key, first in zip(keys, pipe.execute(), strict=True) if first}
            LOG_THROTTLE.remember(keys, now, period)
            rows = [row for row in rows if not row["throttle_key"] or row["throttle_key"] in won]
        if rows:
            with session_scope() as session:
                session.execute(insert(OpportunityRow), [_without_key(row) for row in rows])
        report.logged = len(rows)
    except Exception:
        report.errors += 1
        log_failure(log, "could not log %d opportunities", len(rows))


def _without_key(row: dict[str, object]) -> dict[str, object]:
    return {name: value for name, value in row.items() if name != "throttle_key"}
