"""Market-data use cases: oracle polls, Gamma discovery, CLOB book polls.

Shared by the Celery tasks (tasks/marketdata.py), the CLI and the tests, which call them with
an explicit `now`. Each use case is safe to run concurrently with itself and never raises on
bad upstream data: a failed provider or page is logged and the previous state stays in place.
HTTP sessions are created lazily per process (after the worker fork) and kept alive.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError

from pm_arb_tasks.adapters.http import UpstreamError, make_session
from pm_arb_tasks.adapters.oracles.binance import BinanceOracle
from pm_arb_tasks.adapters.oracles.coinbase import CoinbaseOracle
from pm_arb_tasks.adapters.oracles.coingecko import CoinGeckoOracle
from pm_arb_tasks.adapters.oracles.fallback import OracleFallback
from pm_arb_tasks.adapters.polymarket.books import BookReader, book_session
from pm_arb_tasks.adapters.polymarket.gamma import GammaClient, parse_market
from pm_arb_tasks.db.models import MarketRow, PositionRow, utcnow
from pm_arb_tasks.db.session import dialect_insert, session_scope
from pm_arb_tasks.domain.models import Market, MarketKind, Tick
from pm_arb_tasks.failures import log_failure
from pm_arb_tasks.services.positions import OPEN
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.market_data import (
    RedisHealthStore,
    mark_poll,
    save_books,
    save_markets,
    save_ticks,
    track_markets,
    tracked_token_ids,
)

log = logging.getLogger(__name__)
ORACLE_TIMEOUT = (1.0, 2.0)  # a 1 s poll cannot wait on one slow provider for long
RESOLUTION_LOOKBACK = timedelta(days=3)  # how long a resolved market's outcome is chased
RESOLUTION_BATCH = 500


@lru_cache(maxsize=4)
def oracle_chain(binance_url: str, coinbase_url: str, coingecko_url: str) -> OracleFallback:
    """The providers in priority order, each on its own keep-alive session."""
    session = lambda: make_session(retries=1, backoff=0.1, timeout=ORACLE_TIMEOUT)  # noqa: E731
    providers = [
        BinanceOracle(binance_url, session()),
        CoinbaseOracle(coinbase_url, session()),
        CoinGeckoOracle(coingecko_url, session()),
    ]
    return OracleFallback(providers, RedisHealthStore())


@lru_cache(maxsize=4)
def gamma_client(url: str) -> GammaClient:
    return GammaClient(url, make_session(timeout=(3.05, 10.0)))


@lru_cache(maxsize=4)
def book_reader(url: str) -> BookReader:
    return BookReader(url, book_session())


class LastPrices:
    """This process's memory of the price each symbol had at its previous poll, which tells the
    poll what moved without a round trip before the scan's dispatch. One oracle process polls (beat
    sends one poll a second; its two threads overlap only when a poll outlasts that second, and then
    at worst one scan more is sent, which prices from the newest tick anyway). A fresh process, or
    one that never saw a symbol, counts it as moved, which costs one scan that finds what the
    previous one found."""

    def __init__(self) -> None:
        self._prices: dict[str, Decimal] = {}

    def moved(self, ticks: Sequence[Tick]) -> list[Tick]:
        return [tick for tick in ticks if self._prices.get(tick.symbol) != tick.price]

    def remember(self, ticks: Sequence[Tick]) -> None:
        self._prices.update((tick.symbol, tick.price) for tick in ticks)

    def clear(self) -> None:
        self._prices.clear()


LAST_PRICES = LastPrices()


def poll_oracles(now: datetime, send: Callable[[list[Tick]], None] | None = None) -> list[str]:
    """One tick per symbol from the fallback chain: the ticks whose price moved go to `send` (the
    scan's dispatch, whose message carries them), then every tick is stored (the history the
    volatility and the Up/Down strikes are read from) and the poll recorded, whatever `send` did.
    Returns the symbols that moved.

    The scan prices from the ticks in its message, so nothing stands between the oracle's reply
    and the dispatch but this process's comparison with the previous price.
    """
    settings = get_settings()
    chain = oracle_chain(settings.binance_api_url, settings.coinbase_api_url, settings.coingecko_api_url)
    ticks = chain.fetch(settings.symbols, now)
    if not ticks:
        return []
    moved = LAST_PRICES.moved(ticks)
    try:
        if moved and send is not None:
            send(moved)
        LAST_PRICES.remember(ticks)  # a failed dispatch leaves the move to be sent by the next poll
    finally:
        try:
            save_ticks(ticks)
        finally:
            mark_poll("oracle", now)
    return [tick.symbol for tick in moved]


def poll_books(now: datetime) -> int:
    """Fetch and store the books of every tracked token; returns how many were stored."""
    tokens = tracked_token_ids()
    if not tokens:
        return 0
    books = book_reader(get_settings().clob_api_url).books(tokens, now)
    save_books(books)
    if books:
        mark_poll("books", now)
    if len(books) < len(tokens):
        log.info("books: %d of %d tracked tokens had a usable book", len(books), len(tokens))
    return len(books)


@dataclass
class DiscoveryReport:
    """What one discovery round saw: the counts the operator and the tests look at."""

    ok: bool = True
    rows: int = 0
    dropped: int = 0  # rows without a usable condition id
    other_symbols: int = 0  # crypto markets of symbols not configured
    kinds: Counter[str] = field(default_factory=Counter)
    resolved: int = 0  # tracked markets whose closure or winner was learnt this round

    @property
    def unclassified(self) -> int:
        return self.kinds[MarketKind.UNCLASSIFIED.value]

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "dropped": self.dropped,
            "other_symbols": self.other_symbols,
            "kinds": dict(self.kinds),
            "resolved": self.resolved,
        }


def discover_markets(now: datetime) -> DiscoveryReport:
    """One Gamma round: cache and index the open markets, upsert them, learn resolutions.

    All or nothing: if a page fails, the previous index stays in place (its markets expire
    from the cache after an hour), so a Gamma outage never empties the scanner's universe.
    """
    settings = get_settings()
    client = gamma_client(settings.gamma_api_url)
    report = DiscoveryReport()
    try:
        rows = client.active_rows(now)
    except UpstreamError as exc:
        log.warning("discovery: Gamma listing failed, keeping the previous markets: %s", exc)
        report.ok = False
        return report
    report.rows = len(rows)
    markets: list[Market] = []
    for row in rows:
        market = parse_market(row)
        if market is None:
            report.dropped += 1
        elif market.symbol is not None and market.symbol not in settings.symbols:
            report.other_symbols += 1
        else:
            markets.append(market)
            report.kinds[market.kind.value] += 1
    save_markets(markets)
    track_markets(markets, settings.symbols)
    try:  # the scanner reads the cache above; the table and the resolutions can wait for the next round
        upsert_markets(markets)
        report.resolved = _learn_resolutions(client, now)
    except SQLAlchemyError:
        log_failure(log, "discovery: markets cached for the scanner, database upsert and resolutions skipped")
    mark_poll("markets", now)
    log.info("discovery: %s", report.as_dict())
    return report


def _learn_resolutions(client: GammaClient, now: datetime) -> int:
    """Ask Gamma about classified markets whose winner we lack: those past their resolution time,
    and those we hold an open position in whatever their scheduled end. A market can close before
    its `endDate`; it then leaves the active listing with its old end in our table, and without
    the second rule its positions would never settle."""
    held = select(PositionRow.market_id).where(PositionRow.status == OPEN)
    with session_scope() as session:
        pending = list(
            session.scalars(
                select(MarketRow.market_id)
                .where(
                    MarketRow.kind != MarketKind.UNCLASSIFIED.value,
                    MarketRow.winning_outcome.is_(None),
                    or_(
                        MarketRow.resolves_at.between(now - RESOLUTION_LOOKBACK, now),
                        MarketRow.market_id.in_(held),
                    ),
                )
                .order_by(MarketRow.resolves_at.desc())
                .limit(RESOLUTION_BATCH)
            )
        )
    if not pending:
        return 0
    try:
        rows = client.rows_for_conditions(pending)
    except UpstreamError as exc:
        log.warning("discovery: resolution lookup for %d markets failed: %s", len(pending), exc)
        return 0
    wanted = set(pending)
    updates = [m for row in rows if (m := parse_market(row)) is not None and m.market_id in wanted]
    changed = [m for m in updates if m.closed]
    upsert_markets(changed)
    for market in changed:
        log.info(
            "market %s (%s) closed, winner %s",
            market.market_id[:18], market.slug, market.winning_outcome or "not known yet",
        )
    return sum(1 for m in changed if m.winning_outcome is not None)


def _row(market: Market) -> dict[str, object]:
    schedule = market.fee_schedule
    return {
        "market_id": market.market_id,
        "gamma_id": market.gamma_id,
        "slug": market.slug,
        "question": market.question,
        "symbol": market.symbol,
        "kind": market.kind.value,
        "strike": market.strike,
        "window_start": market.window_start,
        "resolves_at": market.resolves_at,
        "yes_token_id": market.yes_token_id,
        "no_token_id": market.no_token_id,
        "outcome_yes": market.outcomes[0],
        "outcome_no": market.outcomes[1],
        "tick_size": market.tick_size,
        "min_order_size": market.min_order_size,
        "neg_risk": market.neg_risk,
        "fees_enabled": market.fees_enabled,
        "fee_rate": schedule.rate if schedule else None,
        "fee_exponent": schedule.exponent if schedule else None,
        "active": market.active,
        "closed": market.closed,
        "accepting_orders": market.accepting_orders,
        "winning_outcome": market.winning_outcome.value if market.winning_outcome else None,
    }


def upsert_markets(markets: Sequence[Market], batch: int = 500) -> int:
    """Insert or update by condition id. A market once closed stays closed and a known winner
    is never erased by a later, less informed row."""
    if not markets:
        return 0
    with session_scope() as session:
        insert = dialect_insert(session.get_bind().dialect.name)
        for start in range(0, len(markets), batch):
            rows = [_row(m) for m in markets[start : start + batch]]
            stmt = insert(MarketRow).values(rows)
            updated = {
                name: stmt.excluded[name] for name in rows[0] if name not in ("market_id", "closed", "winning_outcome")
            }
            updated["closed"] = or_(MarketRow.closed, stmt.excluded.closed)
            updated["winning_outcome"] = func.coalesce(MarketRow.winning_outcome, stmt.excluded.winning_outcome)
            updated["updated_at"] = utcnow()
            session.execute(stmt.on_conflict_do_update(index_elements=["market_id"], set_=updated))
    return len(markets)
