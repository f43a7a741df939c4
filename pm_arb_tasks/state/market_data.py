"""Latest market data in Redis, read by the scanner, the paper executor and the watchdog.

- Order books per token (JSON) and markets per condition id (JSON), as before.
- Oracle ticks per symbol in a sorted set scored by observation time: the newest member is the
  latest tick, the rest is the rolling history (`HISTORY_SECONDS`, enough for EWMA volatility
  and for the price at any 15-minute window start within the last hour). Because "latest" is
  simply the highest score, a slow poll finishing late can never move it backwards.
- The tracked markets per symbol (the scanner's universe) and the token ids whose books are
  polled, replaced as a whole by each complete discovery round.
- Staleness rules with time passed in: a tick older than three oracle poll periods, or a book
  older than three book poll periods, is stale, and nothing may trade on it.

Keys carry `pm_arb:` so they never collide with Celery's own keys.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from time import monotonic
from typing import Any, NamedTuple

from pydantic import ValidationError
from redis.connection import Connection
from redis.exceptions import ResponseError

from pm_arb_tasks.adapters.oracles.fallback import ProviderHealth
from pm_arb_tasks.domain.models import Book, Market, MarketKind, Tick
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.redis_client import get_redis

STALE_PERIODS = 3

BOOK_KEY = "pm_arb:book:{token_id}"
BOOK_TTL_SECONDS = 300


BOOK_TOP_KEY = "pm_arb:book_top:{token_id}"


class BookTop(NamedTuple):
    """Best ask and observation time of a stored book, for the scanner's float screening only:
    a few bytes per token instead of a whole book to parse on every oracle tick."""

    best_ask: float | None
    observed_at: float  # epoch seconds


class PackedReads:
    """Read commands whose arguments never change, packed once, sent as one round trip.

    redis-py packs every argument in Python on each call (about 0.4 µs a key); for the thousands
    of keys the scanner reads on every tick that is as much as Redis takes to answer. The reply
    is read in full whatever happens, so no connection goes back to the pool mid-reply.
    """

    def __init__(self, *commands: tuple[str, ...]):
        self._commands = commands
        self._packed: list[bytes] | None = None

    def execute(self) -> list[Any]:
        pool = get_redis().connection_pool
        conn = pool.get_connection()
        try:
            if self._packed is None:
                self._packed = conn.pack_commands(self._commands)
            return conn.retry.call_with_retry(lambda: self._round_trip(conn), lambda _error: conn.disconnect())
        finally:
            pool.release(conn)

    def _round_trip(self, conn: Connection) -> list[Any]:
        conn.send_packed_command(self._packed)
        replies, failure = [], None
        for _ in self._commands:
            try:
                replies.append(conn.read_response())
            except ResponseError as error:  # the other replies are still on the wire: read them first
                replies.append(None)
                failure = failure or error
        if failure is not None:
            raise failure
        return replies


def save_books(books: Iterable[Book]) -> None:
    pipe = get_redis().pipeline(transaction=False)
    for book in books:
        pipe.set(BOOK_KEY.format(token_id=book.token_id), book.model_dump_json(), ex=BOOK_TTL_SECONDS)
        best = book.best_ask.price if book.best_ask else ""
        top = f"{best}|{book.observed_at.timestamp()}"
        pipe.set(BOOK_TOP_KEY.format(token_id=book.token_id), top, ex=BOOK_TTL_SECONDS)
    pipe.execute()


@lru_cache(maxsize=1 << 15)  # two tops per market: room for the current ones of 16,000 markets
def _parse_top(raw: str | None) -> BookTop | None:
    """A stored top, parsed once per distinct value: between two book polls every tick reads the
    same strings again. None for a missing or unreadable entry."""
    if raw is None:
        return None
    try:
        ask, observed = raw.split("|")
        return BookTop(float(ask) if ask else None, float(observed))
    except ValueError:
        return None


class BookTops:
    """The tops of a fixed list of tokens, read on every oracle tick (one MGET).

    The scanner's universe changes once per discovery round, so the keys are built once for it
    rather than thousands of times per tick; `command` lets the scanner send the MGET with its
    other reads, and `parse` reads its reply.
    """

    def __init__(self, token_ids: Sequence[str]):
        self.token_ids = tuple(token_ids)
        self.command = ("MGET", *(BOOK_TOP_KEY.format(token_id=t) for t in self.token_ids))
        self._read = PackedReads(self.command)

    def read(self) -> list[BookTop | None]:
        """One entry per token, in order; None where there is no readable top."""
        if not self.token_ids:
            return []
        return self.parse(self._read.execute()[0])

    @staticmethod
    def parse(reply: Sequence[str | None]) -> list[BookTop | None]:
        return list(map(_parse_top, reply))


def get_book(token_id: str) -> Book | None:
    raw = get_redis().get(BOOK_KEY.format(token_id=token_id))
    return Book.model_validate_json(raw) if raw else None


@lru_cache(maxsize=4096)
def _book_from_json(raw: str) -> Book:
    """Books are immutable and rewritten once per book poll; the scanner reads the books of its
    candidates on every tick, so a document read twice is parsed once."""
    return Book.model_validate_json(raw)


def get_books(token_ids: Sequence[str]) -> dict[str, Book]:
    """The stored books of many tokens in one round trip (the scanner's per-tick read).

    A missing or unreadable entry is simply absent: the caller treats it as no data.
    """
    if not token_ids:
        return {}
    return parse_books(token_ids, get_redis().mget([BOOK_KEY.format(token_id=t) for t in token_ids]))


def parse_books(token_ids: Sequence[str], raws: Sequence[str | None]) -> dict[str, Book]:
    """The readable ones of the stored book documents `raws` (one per token, None when missing)."""
    books = {}
    for token_id, raw in zip(token_ids, raws, strict=True):
        if raw:
            try:
                books[token_id] = _book_from_json(raw)
            except ValidationError:
                continue
    return books


MARKET_KEY = "pm_arb:market:{market_id}"
MARKET_TTL_SECONDS = 3600
# A new random value after every write of market documents or of the tracked sets (written last,
# after the write it announces), so a reader that finds the value it saw at its last full read
# knows that nothing it read has been rewritten since (`Universe`).
MARKETS_VERSION_KEY = "pm_arb:markets_version"


def _announce(pipe: Any) -> None:
    pipe.set(MARKETS_VERSION_KEY, uuid.uuid4().hex)


def save_markets(markets: Iterable[Market]) -> None:
    pipe = get_redis().pipeline(transaction=False)
    for market in markets:
        key = MARKET_KEY.format(market_id=market.market_id)
        pipe.set(key, market.model_dump_json(), ex=MARKET_TTL_SECONDS)
    _announce(pipe)
    pipe.execute()


def get_market(market_id: str) -> Market | None:
    raw = get_redis().get(MARKET_KEY.format(market_id=market_id))
    return Market.model_validate_json(raw) if raw else None


def get_market_and_book(market_id: str, token_id: str) -> tuple[Market | None, Book | None]:
    """A market and one of its books in one round trip (the paper venue, just before filling);
    an unreadable document raises, as `get_market` and `get_book` do."""
    market, book = get_redis().mget([MARKET_KEY.format(market_id=market_id), BOOK_KEY.format(token_id=token_id)])
    return (_market_from_json(market) if market else None), (_book_from_json(book) if book else None)


# --- oracle ticks -------------------------------------------------------------------------

TICKS_KEY = "pm_arb:ticks:{symbol}"
HISTORY_SECONDS = 2 * 3600
TICKS_TTL_SECONDS = 24 * 3600


def _score(when: datetime) -> float:
    return when.timestamp()


def save_ticks(ticks: Iterable[Tick]) -> None:
    """Append to each symbol's history and trim what is older than `HISTORY_SECONDS` (one round trip)."""
    pipe = get_redis().pipeline(transaction=False)
    for tick in ticks:
        key = TICKS_KEY.format(symbol=tick.symbol)
        pipe.zadd(key, {tick.model_dump_json(): _score(tick.observed_at)})
        pipe.zremrangebyscore(key, "-inf", f"({_score(tick.observed_at) - HISTORY_SECONDS}")
        pipe.expire(key, TICKS_TTL_SECONDS)
    pipe.execute()


def _ticks(raw: Iterable[str]) -> list[Tick]:
    return [Tick.model_validate_json(member) for member in raw]


def latest_tick_command(symbol: str) -> tuple[str, ...]:
    """The read of `symbol`'s newest stored tick, for a caller that sends it with other reads;
    `parse_latest_tick` reads its reply."""
    return ("ZRANGE", TICKS_KEY.format(symbol=symbol), "0", "0", "REV")


def parse_latest_tick(reply: Sequence[str]) -> Tick | None:
    return _ticks(reply)[0] if reply else None


def latest_ticks(symbols: Sequence[str]) -> dict[str, Tick]:
    """The newest stored tick per symbol (symbols without any are absent); one round trip."""
    pipe = get_redis().pipeline(transaction=False)
    for symbol in symbols:
        pipe.execute_command(*latest_tick_command(symbol))
    newest = (parse_latest_tick(found) for found in pipe.execute())
    return {symbol: tick for symbol, tick in zip(symbols, newest, strict=True) if tick is not None}


def latest_tick(symbol: str) -> Tick | None:
    return latest_ticks([symbol]).get(symbol)


def tick_history(symbol: str, since: datetime, until: datetime | None = None) -> list[Tick]:
    """Stored ticks observed in [since, until], oldest first."""
    high = _score(until) if until is not None else "+inf"
    return _ticks(get_redis().zrangebyscore(TICKS_KEY.format(symbol=symbol), _score(since), high))


def price_at(
    symbol: str, when: datetime, tolerance: timedelta | None = None, also: Iterable[Tick] = ()
) -> Tick | None:
    """The tick closest to `when` within `tolerance` (default: the staleness window), among the
    stored ones and `also` (a tick the scan was handed that may not be stored yet).

    For an Up/Down window this is the oracle price at the window start; None when we were not
    polling then, so the scanner skips the window instead of guessing its strike.
    """
    tolerance = tolerance if tolerance is not None else oracle_stale_after()
    found = tick_history(symbol, when - tolerance, when + tolerance)
    found += [tick for tick in also if tick.symbol == symbol and abs(tick.observed_at - when) <= tolerance]
    if not found:
        return None
    # Closest in time; on a tie the earlier tick, which is the one known at `when`.
    return min(found, key=lambda tick: (abs((tick.observed_at - when).total_seconds()), tick.observed_at))


# --- staleness ----------------------------------------------------------------------------


def oracle_stale_after() -> timedelta:
    return timedelta(seconds=STALE_PERIODS * get_settings().oracle_poll_seconds)


def book_stale_after() -> timedelta:
    return timedelta(seconds=STALE_PERIODS * get_settings().book_poll_seconds)


def tick_is_stale(tick: Tick | None, now: datetime) -> bool:
    return tick is None or now - tick.observed_at > oracle_stale_after()


def book_is_stale(book: Book | None, now: datetime) -> bool:
    return book is None or now - book.observed_at > book_stale_after()


def fresh_book(token_id: str, now: datetime) -> Book | None:
    """The stored book, or None when there is none or it is stale."""
    book = get_book(token_id)
    return None if book_is_stale(book, now) else book


# --- tracked markets ----------------------------------------------------------------------

SYMBOL_MARKETS_KEY = "pm_arb:markets:{symbol}"
TRACKED_TOKENS_KEY = "pm_arb:tracked_tokens"


def tradable(market: Market) -> bool:
    """Worth polling books for: classified, open and taking orders."""
    return (
        market.kind is not MarketKind.UNCLASSIFIED
        and market.active
        and market.accepting_orders
        and not market.closed
        and bool(market.yes_token_id and market.no_token_id)
    )


def track_markets(markets: Iterable[Market], symbols: Sequence[str]) -> None:
    """Replace the per-symbol market index and the polled token set in one transaction.

    Every market with a symbol is indexed (unclassified ones too, so the scanner can count
    them); only tradable ones have their books polled.
    """
    by_symbol: dict[str, list[str]] = {symbol: [] for symbol in symbols}
    tokens: list[str] = []
    for market in markets:
        if market.symbol in by_symbol and not market.closed:
            by_symbol[market.symbol].append(market.market_id)
            if tradable(market):
                tokens += [market.yes_token_id, market.no_token_id]
    pipe = get_redis().pipeline(transaction=True)
    for symbol, ids in by_symbol.items():
        key = SYMBOL_MARKETS_KEY.format(symbol=symbol)
        pipe.delete(key)
        if ids:
            pipe.sadd(key, *ids)
    pipe.delete(TRACKED_TOKENS_KEY)
    if tokens:
        pipe.sadd(TRACKED_TOKENS_KEY, *tokens)
    _announce(pipe)
    pipe.execute()


@lru_cache(maxsize=32768)
def _market_from_json(raw: str) -> Market:
    """Markets change every discovery round at most; an unchanged JSON document maps to the
    (immutable) model parsed the first time."""
    return Market.model_validate_json(raw)


def _parse_market(raw: str | None) -> Market | None:
    if not raw:
        return None
    try:
        return _market_from_json(raw)
    except ValidationError:
        return None


class Universe:
    """One symbol's tracked markets as last read: every readable stored market of its index, by
    market id, closed ones included.

    `commands` (which a caller may send with reads of its own) read only the markets' version
    (`MARKETS_VERSION_KEY`): while it is the one seen at the last full read, nothing was rewritten
    and `update` returns the very same tuple without reading a document, so the scanner keeps what
    it derived from it (strikes, key lists) until discovery changes something. Otherwise, and at
    least every `REFRESH_SECONDS` (a document can also expire, or be deleted, without a write),
    the id set and every document are read again: two more round trips, once per change.
    """

    REFRESH_SECONDS = 5.0

    def __init__(self, symbol: str):
        self._set_key = SYMBOL_MARKETS_KEY.format(symbol=symbol)
        self._version: str | None = None
        self._read_at = -math.inf
        self._raws: list[str | None] = []
        self.markets: tuple[Market, ...] = ()
        self.commands: tuple[tuple[str, ...], ...] = (("GET", MARKETS_VERSION_KEY),)

    def update(self, replies: Sequence[Any]) -> tuple[Market, ...]:
        """The markets, from the replies to `commands` just read."""
        (version,) = replies
        if version is not None and version == self._version and monotonic() - self._read_at < self.REFRESH_SECONDS:
            return self.markets
        self._read_at = monotonic()
        # The version before the documents: a write between the two reads makes the next update
        # read again, never keep a document older than the version it remembers.
        self._version, members = _read_pipeline(("GET", MARKETS_VERSION_KEY), ("SMEMBERS", self._set_key))
        keys = [MARKET_KEY.format(market_id=i) for i in sorted(members)]
        raws = get_redis().mget(keys) if keys else []
        if raws != self._raws:
            self._raws = raws
            self.markets = tuple(market for market in map(_parse_market, raws) if market is not None)
        return self.markets


def _read_pipeline(*commands: tuple[str, ...]) -> list[Any]:
    pipe = get_redis().pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute()


class _TrackedRead(NamedTuple):
    universe: Universe
    read: PackedReads


_TRACKED: dict[str, _TrackedRead] = {}  # by symbol: the last universe read, to recognise it unchanged


def tracked_markets(symbol: str) -> tuple[Market, ...]:
    """Every readable stored market of `symbol`'s index (see `Universe`)."""
    known = _TRACKED.get(symbol)
    if known is None:
        universe = Universe(symbol)
        known = _TRACKED[symbol] = _TrackedRead(universe, PackedReads(*universe.commands))
    return known.universe.update(known.read.execute())


def markets_for(symbol: str, now: datetime | None = None) -> list[Market]:
    """The tracked markets of one symbol, by market id; with `now`, unresolved ones only."""
    markets = tracked_markets(symbol)
    if now is None:
        return list(markets)
    return [m for m in markets if not (m.closed or (m.resolves_at is not None and m.resolves_at <= now))]


def tracked_token_ids() -> list[str]:
    return sorted(get_redis().smembers(TRACKED_TOKENS_KEY))


# --- poll bookkeeping (read by the watchdog and `pm-arb status`) ----------------------------

LAST_POLL_KEY = "pm_arb:last_poll:{kind}"  # kind: oracle | books | markets


def mark_poll(kind: str, when: datetime) -> None:
    get_redis().set(LAST_POLL_KEY.format(kind=kind), when.isoformat())


def last_poll(kind: str) -> datetime | None:
    raw = get_redis().get(LAST_POLL_KEY.format(kind=kind))
    try:
        return datetime.fromisoformat(raw).astimezone(UTC) if raw else None
    except ValueError:
        return None


ORACLE_HEALTH_KEY = "pm_arb:oracle_health"


class RedisHealthStore:
    """Oracle provider health shared by every worker process (see adapters.oracles.fallback)."""

    def load(self, names: Iterable[str]) -> dict[str, ProviderHealth]:
        stored = get_redis().hgetall(ORACLE_HEALTH_KEY)
        states = {}
        for name in names:
            try:
                data = json.loads(stored[name]) if name in stored else None
            except ValueError:
                data = None
            states[name] = ProviderHealth.from_json(data)
        return states

    def save(self, name: str, health: ProviderHealth) -> None:
        get_redis().hset(ORACLE_HEALTH_KEY, name, json.dumps(health.to_json()))
