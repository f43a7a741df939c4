"""The scan use case: for the symbols whose spot moved, price every tracked market, keep the ones
whose net edge clears the threshold, and send each as a trade request down the chain.

Reads: the latest oracle tick (the one the poll sent with the scan, or a newer stored one; never
a stale one), the volatility of the stored history, the tracked markets and their books (never
stale ones), all from Redis; nothing on the way to the first dispatch touches the database (the
guardian sizes against the risk book). Every opportunity seen is logged with its reason; a
filtered one at most once per (market, outcome, reason) per `OPPORTUNITY_LOG_SECONDS`, so a market
that stays fee-eaten for an hour is not a row a second. One trade request per (market, outcome)
per cooldown, claimed atomically in Redis so that several scan workers cannot both emit it. One
bad market never stops the scan of the others.

Thousands of markets per tick: what does not depend on the clock or the spot is prepared once
per universe (`plan_for`); a float screen then settles the markets plainly without an edge from
the top of their books alone, and only the rest get the exact Decimal evaluation on their full
books. The screen's fair value is pricing's, bit for bit, and its margin keeps every case closer
to a boundary than float noise for the exact path (tests/unit/test_scan_screen.py).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from pm_arb_tasks.db import opportunity_log
from pm_arb_tasks.domain.edge import Evaluation, Reason, SizingStrategy, evaluate_outcome
from pm_arb_tasks.domain.fees import schedule_for
from pm_arb_tasks.domain.models import Book, Market, OrderType, Outcome, Tick, TradeRequest, new_id
from pm_arb_tasks.domain.pricing import (
    SECONDS_PER_YEAR,
    Unpriceable,
    ewma_volatility,
    fixed_strike,
    phi_d2_many,
    window_strike,
)
from pm_arb_tasks.failures import log_failure
from pm_arb_tasks.services import dispatch
from pm_arb_tasks.settings import Settings, get_settings
from pm_arb_tasks.state import market_data
from pm_arb_tasks.state.market_data import BookTop
from pm_arb_tasks.state.redis_client import get_redis

log = logging.getLogger(__name__)
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


class _Window(NamedTuple):
    """An Up/Down window without a usable stated strike: its K is the oracle price at its start."""

    market: Market
    slot: int
    start: datetime


class _Group(NamedTuple):
    """The markets of one symbol that resolve at the same moment."""

    resolves_at: datetime | None
    size: int  # every market below
    skips: tuple[tuple[Market, Reason], ...]  # settled whatever the clock: not active, not understood
    priced: tuple[tuple[Market, int], ...]  # (market, slot) of the markets with a known K, in `strikes` order
    strikes: tuple[float, ...]
    starts: tuple[datetime | None, ...]  # a window's start (not priced before it), None for a strike market
    opens_at: datetime | None  # the latest of `starts`: from then on every market of `priced` is open
    windows: tuple[_Window, ...]


@dataclass(frozen=True)
class Plan:
    """One symbol's universe prepared for the float screen, once per universe rather than per tick.

    Markets are grouped by resolution time because a group shares the parts of d2 that depend on
    time and volatility (see `pricing.phi_d2_many`), and the markets whose K is known are priced
    in one pass. A market's slot is the index of its YES token in `tokens` (NO is the next one). Closed
    markets are left out: they are not scanned, as `market_data.markets_for` leaves them out.
    """

    groups: tuple[_Group, ...]
    tokens: tuple[str, ...]
    window_starts: frozenset[datetime]  # Up/Down starts whose K is the oracle price then
    broken: tuple[Market, ...] = ()  # markets that could not be prepared: an error on every tick


class _Members(NamedTuple):
    skips: list[tuple[Market, Reason]]
    priced: list[tuple[Market, int]]
    strikes: list[float]
    starts: list[datetime | None]
    windows: list[_Window]

    def add(self, market: Market, slot: int, strike: float, start: datetime | None) -> None:
        self.priced.append((market, slot))
        self.strikes.append(strike)
        self.starts.append(start)


def plan_for(markets: Sequence[Market]) -> Plan:
    """Everything about the screen of `markets` that depends on neither the clock nor the spot.

    The reasons are `pricing.fair_yes_float`'s, in its order; those that depend on the clock
    (window not open yet, no oracle price at its start) are left to `screen`.
    """
    groups: dict[datetime | None, _Members] = {}
    tokens: list[str] = []
    broken = []
    for market in markets:
        if market.closed:
            continue
        members = groups.setdefault(market.resolves_at, _Members([], [], [], [], []))
        slot = len(tokens)
        try:
            if not (market.active and market.accepting_orders):
                members.skips.append((market, Reason.CLOSED))
            elif market.window_start is not None and fixed_strike(market) is None:
                if market.strike is not None and market.strike > 0:  # a window whose strike Gamma stated
                    members.add(market, slot, _finite(window_strike(market, None)), market.window_start)
                else:  # K per tick: the oracle price at the start (`window_strike` says when there is none)
                    members.windows.append(_Window(market, slot, market.window_start))
            elif market.resolves_at is None:
                members.skips.append((market, Reason.UNCLASSIFIED))
            else:
                members.add(market, slot, _finite(fixed_strike(market)), None)
        except Unpriceable as unpriceable:
            members.skips.append((market, unpriceable.reason))
        except Exception:
            broken.append(market)
            continue
        tokens += (market.yes_token_id, market.no_token_id)
    prepared = []
    for when, m in groups.items():
        size = len(m.skips) + len(m.priced) + len(m.windows)
        if size:
            opens_at = max((start for start in m.starts if start is not None), default=None)
            prepared.append(
                _Group(
                    when, size, tuple(m.skips), tuple(m.priced), tuple(m.strikes), tuple(m.starts), opens_at,
                    tuple(m.windows),
                )
            )
    starts = frozenset(w.start for m in groups.values() for w in m.windows if w.market.strike is None)
    return Plan(tuple(prepared), tuple(tokens), starts, tuple(broken))


def _finite(strike: Decimal | None) -> float:
    """K > 0 as a float the screen can divide by and take the log of."""
    value = float("nan") if strike is None else float(strike)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"strike {strike} is not a usable number")
    return value


# The float screen only settles outcomes that are further than float noise from a boundary (no
# edge / below the threshold before any fee); anything closer, stale or unknown is evaluated
# exactly in Decimal against the full book.
SCREEN_MARGIN = 1e-9


@dataclass
class Screen:
    """What the float screen of one tick settled, and what it left to the exact evaluation."""

    markets: int = 0  # scanned: not closed, not resolved
    no_edge: int = 0  # outcomes whose ask is plainly at or above fair: counted only
    skips: list[tuple[Market, Reason]] = field(default_factory=list)
    below: list[tuple[Market, Outcome, float, float]] = field(default_factory=list)  # fair YES, ask
    kept: list[tuple[Market, Outcome, float]] = field(default_factory=list)  # fair YES
    failed: list[Market] = field(default_factory=list)


def screen(
    plan: Plan,
    tops: Sequence[BookTop | None],
    *,
    spot: float,
    sigma: float,
    now: datetime,
    window_opens: Mapping[datetime, Decimal | None],
    fresh_after: float,
    min_edge: float,
) -> Screen:
    """Price every market of `plan` in float and keep the outcomes that might clear the threshold.

    Pure. `tops` are in `plan.tokens` order; `fresh_after`: epoch seconds a top must be newer;
    `window_opens`: the oracle price at each open window's start. The fair value is the one
    `pricing.fair_yes_float` gives, bit for bit, so the exact evaluation reuses it. Most markets
    are priced at or above fair on both sides, so one comparison per side settles them without
    reading or parsing their books.
    """
    out = Screen(failed=list(plan.broken))
    skips, below, kept = out.skips, out.below, out.kept
    no_edge = 0
    low, high, below_fair = SCREEN_MARGIN, min_edge - SCREEN_MARGIN, -SCREEN_MARGIN
    for group in plan.groups:
        resolves_at = group.resolves_at
        if resolves_at is not None and resolves_at <= now:
            continue  # resolved: no longer scanned
        out.markets += group.size
        skips += group.skips
        entries, strikes = group.priced, group.strikes
        if group.windows or (group.opens_at is not None and now < group.opens_at):
            entries, strikes = _open_now(group, now, window_opens, out)
        if not entries:
            continue
        if resolves_at is None or not spot > 0:
            reason = Reason.UNCLASSIFIED if resolves_at is None else Reason.STALE
            skips += [(market, reason) for market, _ in entries]
            continue
        fairs = phi_d2_many(spot, strikes, sigma, (resolves_at - now).total_seconds() / SECONDS_PER_YEAR)
        for (market, slot), fair in zip(entries, fairs, strict=True):
            yes, no = tops[slot], tops[slot + 1]
            if (  # the common case: both books fresh and asking more than fair
                yes is not None and no is not None and yes.observed_at > fresh_after and no.observed_at > fresh_after
                and yes.best_ask is not None and no.best_ask is not None
                and fair - yes.best_ask < below_fair and (1.0 - fair) - no.best_ask < below_fair
            ):
                no_edge += 2
                continue
            for outcome, top, outcome_fair in ((Outcome.YES, yes, fair), (Outcome.NO, no, 1.0 - fair)):
                if top is None or top.observed_at <= fresh_after:
                    kept.append((market, outcome, fair))  # the exact pass reads the book: "stale data"
                    continue
                gross = outcome_fair - top.best_ask if top.best_ask is not None else -1.0
                if gross < below_fair:
                    no_edge += 1
                elif low < gross < high:
                    below.append((market, outcome, fair, top.best_ask))
                else:
                    kept.append((market, outcome, fair))
    out.no_edge = no_edge
    return out


def _open_now(
    group: _Group, now: datetime, window_opens: Mapping[datetime, Decimal | None], out: Screen
) -> tuple[Sequence[tuple[Market, int]], Sequence[float]]:
    """The group's markets that can be priced at `now` and their K; the others go to `out`."""
    entries, strikes = [], []
    for entry, strike, start in zip(group.priced, group.strikes, group.starts, strict=True):
        if start is not None and now < start:
            out.skips.append((entry[0], Reason.WINDOW_NOT_OPEN))
        else:
            entries.append(entry)
            strikes.append(strike)
    for window in group.windows:
        try:
            if now < window.start:
                raise Unpriceable(Reason.WINDOW_NOT_OPEN)
            strikes.append(_finite(window_strike(window.market, window_opens.get(window.start))))
            entries.append((window.market, window.slot))
        except Unpriceable as unpriceable:
            out.skips.append((window.market, unpriceable.reason))
        except Exception:
            out.failed.append(window.market)
    return entries, strikes


def fair_of(outcome: Outcome, fair_yes: float) -> Decimal:
    """The Decimal fair value of `outcome` from the float fair value of YES (as `pricing.fair_yes`)."""
    prob = Decimal(repr(fair_yes))
    return prob if outcome is Outcome.YES else 1 - prob


def below_evaluation(outcome: Outcome, fair_yes: float, ask: float) -> Evaluation:
    """The log record of an outcome the screen found below the threshold before any fee."""
    prob, price = fair_of(outcome, fair_yes), Decimal(repr(ask))
    return Evaluation(outcome, prob, Reason.BELOW_THRESHOLD, ask=price, net_edge=prob - price)


def evaluate_kept(
    market: Market, outcome: Outcome, fair_yes: float, *, books: Mapping[str, Book], now: datetime,
    params: ScanParams,
) -> Evaluation:
    """The exact Decimal evaluation of one outcome the screen kept, against its full book.

    The size is capped by the whole position limit: the guardian takes off what the market already
    holds under its lock (it reduces or rejects), so the scan never reads the risk book.
    """
    prob = fair_of(outcome, fair_yes)
    book = books.get(market.token_for(outcome))
    if book is None or now - book.observed_at > params.book_max_age:
        return Evaluation(outcome, prob, Reason.STALE)
    return evaluate_outcome(
        outcome=outcome, prob=prob, asks=book.asks, schedule=schedule_for(market), min_edge=params.min_edge,
        tick=book.tick_size or market.tick_size, max_trade=params.max_trade, room=params.position_limit,
        min_order_size=book.min_order_size or market.min_order_size, strategy=params.strategy,
        bankroll=params.bankroll,
    )


def top_of(book: Book) -> BookTop:
    """The top the book poll stores for `book` (benchmarks and tests screen books in memory)."""
    return BookTop(float(book.best_ask.price) if book.best_ask else None, book.observed_at.timestamp())


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
        """The counts first, the reasons last: a repr cut short (`ProductTask`) keeps the counts."""
        return {
            "emitted": len(self.requests), "markets": self.markets, "logged": self.logged, "errors": self.errors,
            "seconds": round(self.seconds, 4), "reasons": dict(self.reasons),
        }


def scan(
    symbols: Sequence[str], now: datetime, *, tick_at: datetime | None = None, ticks: Sequence[Tick] = (),
    send: Send | None = None,
) -> ScanReport:
    """Scan `symbols` at `now`; `tick_at` is the poll that asked for it (too old: nothing to do),
    `ticks` the ticks it sent (the poll stores them after sending): per symbol, the newer of the
    one sent and the one stored is priced from."""
    started = time.perf_counter()
    settings = get_settings()
    send = send or dispatch.dispatch
    report = ScanReport()
    rows: list[dict[str, object]] = []
    if tick_at is not None and now - tick_at >= timedelta(seconds=settings.trade_ttl_seconds):
        report.reasons["late scan"] += 1
        return report
    params = ScanParams.from_settings(settings)
    scanner = _SymbolScanner(settings, params, now, send, report, rows, ticks)
    for symbol in symbols:
        try:
            scanner.scan_symbol(symbol)
        except Exception:
            report.errors += 1
            log_failure(log, "scan of %s failed; other symbols continue", symbol)
    scanner.give_back()
    _log_opportunities(rows, report, settings.opportunity_log_seconds, now)
    report.seconds = time.perf_counter() - started
    log.info("scan %s: %s", ",".join(symbols), report.as_dict())
    return report


class _SymbolScanner:
    """The I/O around the pure screen and evaluation: reads, cooldown claims, dispatch, log rows."""

    def __init__(
        self, settings: Settings, params: ScanParams, now: datetime, send: Send, report: ScanReport,
        rows: list[dict[str, object]], sent: Sequence[Tick] = (),
    ):
        self.settings, self.params, self.now, self.send = settings, params, now, send
        self.report, self.rows, self.sent = report, rows, sent
        self.stamp = now.timestamp()
        self.unused_claims: list[tuple[str, Outcome]] = []

    def scan_symbol(self, symbol: str) -> None:
        read = reader_for(symbol).read()
        tick = newest(read.tick, *(t for t in self.sent if t.symbol == symbol))
        if (
            tick is None
            or market_data.tick_is_stale(tick, self.now)
            or tick.observed_at + timedelta(seconds=self.settings.trade_ttl_seconds) <= self.now
        ):
            self._skip_symbol(symbol, Reason.STALE)
            return
        sigma = symbol_volatility(symbol, self.now, self.settings, cached=read.volatility)
        if sigma is None:
            self._skip_symbol(symbol, Reason.NO_VOLATILITY)
            return
        plan = read.plan
        window_opens = {start: self._price_at(symbol, start) for start in plan.window_starts if start <= self.now}
        screened = screen(
            plan, read.tops, spot=float(tick.price), sigma=float(sigma), now=self.now, window_opens=window_opens,
            fresh_after=(self.now - self.params.book_max_age).timestamp(), min_edge=float(self.params.min_edge),
        )
        self._record_screen(symbol, screened)
        candidates = self._evaluate(symbol, screened.kept)
        if candidates:
            self._emit_all(candidates, tick)

    def _record_screen(self, symbol: str, screened: Screen) -> None:
        """Count and log what the screen settled; a below-threshold row is built only when logged."""
        self.report.markets += screened.markets
        for market in screened.failed:
            self._failed(market)
        if screened.no_edge:
            self.report.reasons[Reason.NO_EDGE.value] += screened.no_edge
        for market, reason in screened.skips:
            self._record(market.market_id, symbol, None, reason)
        if screened.below:
            self.report.reasons[Reason.BELOW_THRESHOLD.value] += len(screened.below)
        for market, outcome, fair, ask in screened.below:
            key = self._log_key(symbol, market.market_id, outcome, Reason.BELOW_THRESHOLD)
            if key is not None:
                self._row(key, market.market_id, symbol, below_evaluation(outcome, fair, ask), Reason.BELOW_THRESHOLD)

    def _evaluate(self, symbol: str, kept: list[tuple[Market, Outcome, float]]) -> list[Candidate]:
        """The exact evaluation of what the screen kept: record what it filters, return what it would
        emit with whether its cooldown was won. The cooldowns are claimed with the books' read, for
        every kept outcome; those the evaluation then filters are given back (`give_back`)."""
        if not kept:
            return []
        books, won = books_and_cooldowns(
            [(market, outcome) for market, outcome, _ in kept], self.settings.market_cooldown_seconds
        )
        candidates = []
        for (market, outcome, fair), claimed in zip(kept, won, strict=True):
            try:
                evaluation = evaluate_kept(market, outcome, fair, books=books, now=self.now, params=self.params)
            except Exception:
                self._failed(market)
                evaluation = None
            if evaluation is not None and evaluation.reason is Reason.EMITTED:
                candidates.append(Candidate(market, evaluation, claimed))
                continue
            if evaluation is not None:
                self._record(market.market_id, symbol, evaluation, evaluation.reason)
            if claimed and self.settings.market_cooldown_seconds > 0:
                self.unused_claims.append((market.market_id, outcome))
        return candidates

    def _price_at(self, symbol: str, start: datetime) -> Decimal | None:
        """The oracle price at an open Up/Down window's start (one read per distinct start and tick);
        the tick sent with the scan counts, stored or not yet."""
        found = market_data.price_at(symbol, start, also=self.sent)
        return found.price if found else None

    def _failed(self, market: Market) -> None:
        self.report.errors += 1
        log_failure(log, "scan of market %s failed; other markets continue", market.market_id)

    def _emit_all(self, candidates: list[Candidate], tick: Tick) -> None:
        """Send the candidates that won their cooldown."""
        for market, evaluation, won in candidates:
            reason, request = Reason.COOLDOWN, None
            if won:
                reason, request = self._emit(market, tick, evaluation)
            self._record(market.market_id, tick.symbol, evaluation, reason, request)

    def give_back(self) -> None:
        """Release the cooldowns claimed for outcomes the exact evaluation filtered (after the
        dispatches, off the order path), so their next tick may trade; never raise: at worst they
        wait out the cooldown."""
        if not self.unused_claims:
            return
        try:
            release_cooldowns(self.unused_claims)
        except Exception:
            self.report.errors += 1
            log_failure(log, "could not release %d unused cooldowns", len(self.unused_claims))
        self.unused_claims.clear()

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
            release_cooldowns([(market.market_id, evaluation.outcome)])
            return Reason.DISPATCH_FAILED, request
        self.report.requests.append(request)
        return Reason.EMITTED, request

    def _skip_symbol(self, symbol: str, reason: Reason) -> None:
        self._record(SYMBOL_WIDE, symbol, None, reason)

    def _record(
        self, market_id: str, symbol: str, evaluation: Evaluation | None, reason: Reason,
        request: TradeRequest | None = None,
    ) -> None:
        """Count `reason`; add a log row unless the reason is a plain no-edge or was logged lately."""
        self.report.reasons[reason.value] += 1
        if reason is Reason.NO_EDGE:
            return
        key = None
        if reason is not Reason.EMITTED:
            key = self._log_key(symbol, market_id, evaluation.outcome if evaluation else None, reason)
            if key is None:
                return
        self._row(key, market_id, symbol, evaluation, reason, request)

    def _log_key(self, symbol: str, market_id: str, outcome: Outcome | None, reason: Reason) -> LogKey | None:
        """The throttle key of a filtered opportunity, or None when this process logged it lately.

        The enum members themselves (they format as their values), as `.value` costs a descriptor
        call and this runs for every filtered outcome of every tick."""
        key = (symbol, market_id, outcome, reason)
        return None if LOG_THROTTLE.recent(key, self.stamp) else key

    def _row(
        self, key: LogKey | None, market_id: str, symbol: str, evaluation: Evaluation | None, reason: Reason,
        request: TradeRequest | None = None,
    ) -> None:
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


def newest(*ticks: Tick | None) -> Tick | None:
    """The latest observed of `ticks` (None when there is none)."""
    return max((tick for tick in ticks if tick is not None), key=lambda tick: tick.observed_at, default=None)


class SymbolRead(NamedTuple):
    """What one tick's scan of a symbol reads before pricing."""

    tick: Tick | None  # the newest stored, stale or not
    volatility: str | None  # the cached sigma (None: to be computed from the history)
    plan: Plan  # of the current universe
    tops: list[BookTop | None]  # in `plan.tokens` order


class SymbolReader:
    """The reads of one symbol on every tick, in one round trip while its universe stays the same:
    the newest tick, the cached volatility, the universe's version and the tops of its books.

    The tops asked for are those of the plan prepared last; when discovery changed the universe,
    its documents are read, the plan is prepared again and its tops read on their own (more round
    trips, once per change). The commands are packed again only when the plan changed.
    """

    def __init__(self, symbol: str):
        self.universe = market_data.Universe(symbol)
        self.plan = plan_for(())
        self.tops = market_data.BookTops(())
        self._head = (market_data.latest_tick_command(symbol), ("GET", VOLATILITY_KEY.format(symbol=symbol)))
        self._packed_for: object = None  # the tops packed
        self._packed = market_data.PackedReads()

    def read(self) -> SymbolRead:
        universe, tops = self.universe, self.tops
        if self._packed_for is not tops:
            tail = (tops.command,) if tops.token_ids else ()
            self._packed = market_data.PackedReads(*self._head, *universe.commands, *tail)
            self._packed_for = tops
        replies = self._packed.execute()
        head, parts = len(self._head), len(universe.commands)
        before = universe.markets
        markets = universe.update(replies[head:head + parts])
        if markets is before:
            values = tops.parse(replies[head + parts]) if tops.token_ids else []
        else:
            self.plan = plan_for(markets)
            self.tops = market_data.BookTops(self.plan.tokens)
            values = self.tops.read()
        return SymbolRead(market_data.parse_latest_tick(replies[0]), replies[1], self.plan, values)


_READERS: dict[str, SymbolReader] = {}


def reader_for(symbol: str) -> SymbolReader:
    if symbol not in _READERS:
        _READERS[symbol] = SymbolReader(symbol)
    return _READERS[symbol]


def symbol_volatility(symbol: str, now: datetime, settings: Settings, cached: str | None = None) -> Decimal | None:
    """Annualised sigma of `symbol`, recomputed from the stored ticks at most every few seconds;
    `cached`: the stored value, when the caller read it already."""
    if cached:
        return Decimal(cached)
    lookback = min(6 * settings.vol_halflife_seconds, market_data.HISTORY_SECONDS)
    history = market_data.tick_history(symbol, now - timedelta(seconds=lookback), now)
    sigma = ewma_volatility(
        [(t.observed_at, t.price) for t in history], settings.vol_halflife_seconds, settings.vol_floor,
        settings.vol_cap,
    )
    if sigma is not None:
        get_redis().set(VOLATILITY_KEY.format(symbol=symbol), str(sigma), ex=VOLATILITY_REFRESH_SECONDS)
    return sigma


class Candidate(NamedTuple):
    """An outcome the exact evaluation would emit, and whether this scan won its cooldown."""

    market: Market
    evaluation: Evaluation
    won: bool


# The books of the outcomes the screen kept (GET) and their cooldowns (SET NX PX, across all scan
# workers; none when ARGV[1] is 0), in one round trip: the books are needed for the exact
# evaluation, the claims before the first dispatch, and a script spares redis-py ~10 µs a command
# of pipeline building and parsing. KEYS: the n book keys, then the n cooldown keys.
BOOKS_AND_COOLDOWNS_SCRIPT = """
local n = #KEYS / 2
local reply = {}
for i = 1, n do
    reply[i] = redis.call('GET', KEYS[i])
end
for i = 1, n do
    reply[n + i] = ARGV[1] == '0' and 1 or (redis.call('SET', KEYS[n + i], '1', 'NX', 'PX', ARGV[1]) and 1 or 0)
end
return reply
"""


def _cooldown_key(market_id: str, outcome: Outcome) -> str:
    return COOLDOWN_KEY.format(market_id=market_id, outcome=outcome.value)


def books_and_cooldowns(
    kept: Sequence[tuple[Market, Outcome]], seconds: float
) -> tuple[dict[str, Book], list[bool]]:
    """The stored books of the kept outcomes' tokens, and for each outcome whether this caller is
    its first emitter in the cooldown period (always, when `seconds` is 0)."""
    tokens = [market.token_for(outcome) for market, outcome in kept]
    script = get_redis().register_script(BOOKS_AND_COOLDOWNS_SCRIPT)
    reply = script(
        keys=[*(market_data.BOOK_KEY.format(token_id=t) for t in tokens),
              *(_cooldown_key(market.market_id, outcome) for market, outcome in kept)],
        args=[max(int(seconds * 1000), 0)],
    )
    return market_data.parse_books(tokens, reply[: len(kept)]), [bool(won) for won in reply[len(kept):]]


def release_cooldowns(keys: Sequence[tuple[str, Outcome]]) -> None:
    """Give (market, outcome) pairs back: a request that never left, an outcome the evaluation
    filtered after its claim (the next tick may trade them)."""
    get_redis().delete(*(_cooldown_key(market_id, outcome) for market_id, outcome in keys))


LogKey = tuple[str, str, Outcome | None, Reason]  # symbol, market id, outcome, reason


class LogThrottle:
    """This process's memory of which filtered opportunities were logged lately, so a market that
    stays filtered costs no Redis command per tick; Redis (SET NX) still decides across processes."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._until: dict[LogKey, float] = {}

    def recent(self, key: LogKey, stamp: float) -> bool:
        """`stamp`: epoch seconds now."""
        until = self._until.get(key)
        return until is not None and stamp < until

    def remember(self, keys: Sequence[LogKey], now: datetime, period: float) -> None:
        stamp = now.timestamp()
        if len(self._until) > self.MAX_KEYS:
            self._until = {k: u for k, u in self._until.items() if u > stamp}
        for key in keys:
            self._until[key] = stamp + period

    def clear(self) -> None:
        self._until.clear()


LOG_THROTTLE = LogThrottle()


def _redis_log_key(key: LogKey) -> str:
    symbol, market_id, outcome, reason = key
    return OPPORTUNITY_LOG_KEY.format(symbol=symbol, market_id=market_id, outcome=outcome, reason=reason)


def _log_opportunities(rows: list[dict[str, object]], report: ScanReport, period: float, now: datetime) -> None:
    """Write emitted rows always, filtered ones at most once per key and period; never raise."""
    if not rows:
        return
    try:
        if period > 0:
            keys = [row["throttle_key"] for row in rows if row["throttle_key"]]
            pipe = get_redis().pipeline(transaction=False)
            for key in keys:
                pipe.set(_redis_log_key(key), "1", nx=True, px=int(period * 1000))
            won = {key for key, first in zip(keys, pipe.execute(), strict=True) if first}
            LOG_THROTTLE.remember(keys, now, period)
            rows = [row for row in rows if not row["throttle_key"] or row["throttle_key"] in won]
        opportunity_log.write([_without_key(row) for row in rows])
        report.logged = len(rows)
    except Exception:
        report.errors += 1
        log_failure(log, "could not log %d opportunities", len(rows))


def _without_key(row: dict[str, object]) -> dict[str, object]:
    return {name: value for name, value in row.items() if name != "throttle_key"}
