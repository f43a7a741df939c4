"""The simulator's world: spot paths, a market set around spot, lagging order books, faults, a log.

Deterministic under a seed: each symbol's spot path is a geometric random walk drawn from its
own `random.Random(f"{seed}:{symbol}")`, one step per `step_seconds` since the scenario
started, plus scripted jumps; market ids and token ids are hashes of the seed and the slug;
book sizes are drawn from a generator seeded by the token and the quote. What varies between
runs is only how much wall-clock time has passed.

Books reprice toward fair value only after a lag: a token's quote is the fair probability
computed from the spot price `book_lag_seconds` ago. A jump therefore leaves the books stale
for that long, which is the oracle-lag edge the strategy trades.

Every public method takes `lock` (an RLock), so the threaded HTTP server, the venue
engineer's order endpoints (`sim/clob_orders.py`) and tests can share one scenario.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import math
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
YEAR_SECONDS = 365 * 24 * 3600
HISTORY_SECONDS = 3 * 3600
MAX_CATCHUP_STEPS = 3 * 3600
LOG_SIZE = 20_000
CLOSED_KEEP = timedelta(days=3)
FEE_SCHEDULE = {"rate": 0.07, "exponent": 1, "takerOnly": True, "rebateRate": 0.2}
CHAINLINK = "https://data.chain.link/streams/{slug}-usd"


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str  # as in Polymarket questions
    slug: str  # as in Up/Down slugs
    start: Decimal
    strike_step: Decimal
    decimals: int  # Coinbase quote increment


ASSETS = {
    "BTC": Asset("BTC", "Bitcoin", "btc", Decimal("70000"), Decimal("1000"), 2),
    "ETH": Asset("ETH", "Ethereum", "eth", Decimal("3500"), Decimal("50"), 2),
    "SOL": Asset("SOL", "Solana", "sol", Decimal("150"), Decimal("2"), 2),
    "XRP": Asset("XRP", "XRP", "xrp", Decimal("0.6"), Decimal("0.02"), 4),
}

DEFAULT_SETTINGS: dict[str, Any] = {
    "settlement_delay_seconds": 2.0,  # MATCHED -> CONFIRMED on the venue side
    "book_lag_seconds": 5.0,  # books quote the fair value of the spot this long ago
    "annual_vol": 0.6,  # the random walk's and the quoting model's volatility
    "half_spread": "0.01",
    "levels": 5,  # per side
    "replenish_seconds": 30.0,  # taken liquidity comes back after this long
    "strike_days": 3,
    "strikes_per_day": 5,
}


@dataclass
class Fault:
    """An injected upstream misbehaviour, after `skip` good replies, `times` times (< 0: until cleared).

    modes: "status" (answer `status`, with Retry-After for 429 when given), "truncated" (valid
    JSON cut in half), "html" (a 200 text/html page), "raw" (`body` verbatim as JSON),
    "value" (every price replaced by `value`), "garbage" (a rotating set of bad values).
    """

    mode: str = "status"
    times: int = 1
    skip: int = 0
    status: int = 503
    retry_after: float | None = None
    value: Any = None
    body: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


BAD_VALUES: tuple[Any, ...] = (None, "", "NaN", "Infinity", "-Infinity", "0", "-5", "abc", True, [], {}, "1e999")


@dataclass
class SpotPath:
    price: float
    rng: random.Random
    step: int = 0
    times: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)


@dataclass
class SimMarket:
    gamma_id: int
    condition_id: str
    question_id: str
    slug: str
    question: str
    description: str
    symbol: str | None
    kind: str  # strike | updown | other
    end: datetime
    created: datetime
    tokens: tuple[str, str]
    outcomes: tuple[str, str]
    event_slug: str
    event_title: str
    strike: Decimal | None = None
    window_start: datetime | None = None
    window_seconds: int = 0
    fixed_fair: float | None = None
    group_item_title: str = ""
    tick: Decimal = Decimal("0.01")
    min_size: Decimal = Decimal(5)
    neg_risk: bool = False
    fees_enabled: bool = False
    closed: bool = False
    winner: int | None = None  # index into outcomes
    last_trade: Decimal | None = None

    @property
    def fee_schedule(self) -> dict[str, Any] | None:
        return dict(FEE_SCHEDULE) if self.fees_enabled else None


@dataclass
class BookState:
    quote: tuple[Decimal, Decimal]
    built_at: float
    bids: dict[Decimal, Decimal]
    asks: dict[Decimal, Decimal]


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def num(value: Decimal) -> str:
    """Decimal as the CLOB writes numbers: plain notation, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def digest(*parts: object) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()


def _decimal(price: float) -> Decimal:
    """A path price as the feeds quote it: 8 decimals, like Binance."""
    return Decimal(repr(price)).quantize(Decimal(1).scaleb(-8))


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


class Scenario:
    """Seedable simulator state; see the module docstring. Times are aware UTC datetimes."""

    def __init__(
        self,
        seed: int = 1,
        *,
        symbols: Sequence[str] = tuple(ASSETS),
        clock: Callable[[], datetime] | None = None,
        step_seconds: float = 1.0,
        jumps: Iterable[tuple[float, str, float]] = (),
        window_lengths: Sequence[int] = (900,),
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.symbols = tuple(s for s in symbols if s in ASSETS)
        self._clock = clock or (lambda: datetime.now(UTC))
        self.step_seconds = step_seconds
        self.window_lengths = tuple(window_lengths)
        self.settings: dict[str, Any] = {**DEFAULT_SETTINGS, **(settings or {})}
        self.started = self.now()
        self._t0 = self.started.timestamp()
        self._paths = {
            s: SpotPath(float(ASSETS[s].start), random.Random(f"{seed}:{s}")) for s in self.symbols
        }
        for path in self._paths.values():
            path.times.append(self._t0)
            path.prices.append(path.price)
        self._jumps: list[tuple[float, str, float | None, float | None]] = sorted(
            ((self._t0 + offset, symbol, pct, None) for offset, symbol, pct in jumps), key=lambda j: j[0]
        )
        self.markets: dict[str, SimMarket] = {}  # by condition id
        self._by_token: dict[str, tuple[SimMarket, int]] = {}
        self._by_slug: dict[str, SimMarket] = {}
        self._gamma_ids: set[int] = set()
        self._strike_days: set[tuple[str, date]] = set()
        self._books: dict[str, BookState] = {}
        self.faults: dict[str, Fault] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_SIZE)
        self._seq = itertools.count(1)
        self._refreshed_bucket: float | None = None
        with self.lock:
            self._add_other_markets(self.started)
            self._refresh(self.started)

    # --- clock and log ---------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock()

    def record(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Append to the log served at `/sim/log`; returns the entry (with its `seq`)."""
        with self.lock:
            entry = {"seq": next(self._seq), "kind": kind, "at": iso(self.now()), **payload}
            self._log.append(entry)
            return entry

    def log(self, kind: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self._log if e["seq"] > since and (kind is None or e["kind"] == kind)]

    # --- spot ------------------------------------------------------------------------------

    def _advance(self, now: datetime) -> None:
        target = math.floor((now.timestamp() - self._t0) / self.step_seconds)
        sigma = float(self.settings["annual_vol"]) * math.sqrt(self.step_seconds / YEAR_SECONDS)
        for symbol, path in self._paths.items():
            behind = target - path.step - MAX_CATCHUP_STEPS
            if behind > 0:  # a long pause (or a test clock leap): one aggregated draw, still seeded
                path.step += behind
                at = self._t0 + path.step * self.step_seconds
                self._apply_jumps(symbol, path, at)
                path.price *= math.exp(path.rng.gauss(-0.5 * sigma * sigma * behind, sigma * math.sqrt(behind)))
                self._remember(path, at)
            while path.step < target:
                path.step += 1
                at = self._t0 + path.step * self.step_seconds
                self._apply_jumps(symbol, path, at)
                path.price *= math.exp(path.rng.gauss(-0.5 * sigma * sigma, sigma))
                self._remember(path, at)
            self._apply_jumps(symbol, path, now.timestamp())

    def _apply_jumps(self, symbol: str, path: SpotPath, until: float) -> None:
        due = [j for j in self._jumps if j[0] <= until and j[1] == symbol]
        for jump in due:
            self._jumps.remove(jump)
            at, _, pct, to = jump
            path.price = to if to is not None else path.price * (1 + (pct or 0.0) / 100)
            self._remember(path, max(at, path.times[-1]))

    def _remember(self, path: SpotPath, at: float) -> None:
        path.times.append(at)
        path.prices.append(path.price)
        if len(path.times) > 2 * HISTORY_SECONDS / self.step_seconds and path.times[0] < at - HISTORY_SECONDS:
            cut = bisect.bisect_left(path.times, at - HISTORY_SECONDS)
            del path.times[:cut], path.prices[:cut]

    def spot(self, symbol: str) -> Decimal:
        with self.lock:
            self._advance(self.now())
            return _decimal(self._paths[symbol].price)

    def spots(self) -> dict[str, Decimal]:
        with self.lock:
            self._advance(self.now())
            return {s: _decimal(p.price) for s, p in self._paths.items()}

    def spot_at(self, symbol: str, when: datetime) -> Decimal:
        """The path's price at `when` (the last point at or before it)."""
        with self.lock:
            self._advance(self.now())
            return _decimal(self._spot_at(symbol, when.timestamp()))

    def _spot_at(self, symbol: str, ts: float) -> float:
        path = self._paths[symbol]
        index = bisect.bisect_right(path.times, ts) - 1
        return path.prices[max(index, 0)]

    def set_spot(self, symbol: str, price: Decimal | float | str) -> None:
        with self.lock:
            self._check_symbol(symbol)
            self._schedule(symbol, None, float(price), None)

    def jump(
        self, symbol: str, pct: float | None = None, *, to: float | None = None, in_seconds: float = 0
    ) -> None:
        """Move `symbol` by `pct` percent (or to `to`), now or `in_seconds` from now."""
        with self.lock:
            self._check_symbol(symbol)
            if (pct is None) == (to is None):
                raise ValueError("give exactly one of pct or to")
            if to is not None and not to > 0:
                raise ValueError("to must be positive")
            self._schedule(symbol, pct, to, in_seconds)

    def _schedule(self, symbol: str, pct: float | None, to: float | None, in_seconds: float | None) -> None:
        now = self.now()
        self._advance(now)
        self._jumps.append((now.timestamp() + (in_seconds or 0), symbol, pct, to))
        self._jumps.sort(key=lambda j: j[0])
        self._advance(now)

    def _check_symbol(self, symbol: str) -> None:
        if symbol not in self._paths:
            raise KeyError(f"unknown symbol {symbol!r}; the scenario has {','.join(self.symbols)}")

    # --- markets ---------------------------------------------------------------------------

    def _ids(self, slug: str) -> tuple[int, str, str, tuple[str, str]]:
        hashed = digest(self.seed, slug)
        gamma_id = 1_000_000 + int.from_bytes(hashed[:4]) % 9_000_000
        while gamma_id in self._gamma_ids:
            gamma_id += 1
        self._gamma_ids.add(gamma_id)
        tokens = tuple(str(int.from_bytes(digest(self.seed, slug, i)[:31])) for i in (0, 1))
        question_id = "0x" + digest(self.seed, slug, "question").hex()
        return gamma_id, "0x" + hashed.hex(), question_id, tokens  # type: ignore[return-value]

    def _add(self, **fields: Any) -> SimMarket:
        gamma_id, condition_id, question_id, tokens = self._ids(fields["slug"])
        market = SimMarket(
            gamma_id=gamma_id, condition_id=condition_id, question_id=question_id, tokens=tokens, **fields
        )
        self.markets[condition_id] = market
        self._by_slug[market.slug] = market
        for index, token in enumerate(tokens):
            self._by_token[token] = (market, index)
        return market

    def _add_other_markets(self, now: datetime) -> None:
        """Markets the scanner must leave alone: one non-crypto, one crypto it cannot price."""
        end = datetime.combine((now + timedelta(days=2)).date(), time(18), tzinfo=UTC)
        self._add(
            slug=f"fed-rate-cut-by-{end:%B-%d}".lower(),
            question=f"Will the Fed announce an emergency rate cut by {end:%B} {end.day}?",
            description="Resolves Yes if the FOMC lowers the target range before the end date.",
            symbol=None, kind="other", end=end, created=now, outcomes=("Yes", "No"),
            event_slug=f"fed-emergency-cut-{end:%B-%d}".lower(), event_title="Fed emergency cut?",
            fixed_fair=0.04,
        )  # fmt: skip
        self._add(
            slug=f"will-bitcoin-reach-150k-by-{end:%B-%d}".lower(),
            question=f"Will Bitcoin reach $150,000 by {end:%B} {end.day}?",
            description="Resolves Yes if any Binance BTC/USDT 1 minute candle has a high of 150,000 or more.",
            symbol=None, kind="other", end=end, created=now, outcomes=("Yes", "No"),
            event_slug=f"what-price-will-bitcoin-hit-{end:%B-%d}".lower(), event_title="What price will Bitcoin hit?",
            fixed_fair=0.01,
        )  # fmt: skip

    def _refresh(self, now: datetime) -> None:
        """Create the current and next windows and the coming strike days; close what ended."""
        self._advance(now)
        bucket = math.floor(now.timestamp() / 60)
        if bucket != self._refreshed_bucket:
            self._refreshed_bucket = bucket
            for symbol in self.symbols:
                for length in self.window_lengths:
                    current = math.floor(now.timestamp() / length) * length
                    for start in (current, current + length):
                        self._ensure_window(symbol, length, start, now)
                self._ensure_strikes(symbol, now)
            self._prune(now)
        for market in self.markets.values():
            if not market.closed and market.end <= now:
                self._resolve(market, None)

    def _ensure_window(self, symbol: str, length: int, start_ts: int, now: datetime) -> None:
        asset = ASSETS[symbol]
        unit = f"{length // 60}m" if length < 3600 else f"{length // 3600}h"
        slug = f"{asset.slug}-updown-{unit}-{start_ts}"
        if slug in self._by_slug:
            return
        start = datetime.fromtimestamp(start_ts, UTC)
        end = start + timedelta(seconds=length)
        local_start, local_end = start.astimezone(NEW_YORK), end.astimezone(NEW_YORK)
        span = f"{local_start:%-I:%M%p}-{local_end:%-I:%M%p}"
        self._add(
            slug=slug,
            question=f"{asset.name} Up or Down - {local_start:%B} {local_start.day}, {span} ET",
            description=(
                f'This market will resolve to "Up" if the {asset.name} price at the end of the time range '
                "specified in the title is greater than or equal to the price at the beginning of that "
                'range. Otherwise, it will resolve to "Down".'
            ),
            symbol=symbol, kind="updown", end=end, created=min(now, start - timedelta(minutes=15)),
            outcomes=("Up", "Down"), event_slug=slug, event_title=f"{asset.name} Up or Down",
            window_start=start, window_seconds=length, fees_enabled=True,
        )  # fmt: skip

    def _ensure_strikes(self, symbol: str, now: datetime) -> None:
        asset = ASSETS[symbol]
        today = now.astimezone(NEW_YORK).date()
        spot = Decimal(repr(self._paths[symbol].price))
        count = int(self.settings["strikes_per_day"])
        for offset in range(int(self.settings["strike_days"]) + 1):
            day = today + timedelta(days=offset)
            end = datetime.combine(day, time(12), tzinfo=NEW_YORK).astimezone(UTC)
            if end <= now or (symbol, day) in self._strike_days:
                continue
            self._strike_days.add((symbol, day))
            center = (spot / asset.strike_step).to_integral_value() * asset.strike_step
            for k in range(count):
                strike = center + (k - count // 2) * asset.strike_step
                if strike <= 0:
                    continue
                label = f"{strike:,.0f}" if strike == strike.to_integral_value() else f"{strike:,.2f}"
                slug_strike = label.replace(",", "").replace(".", "pt")
                self._add(
                    slug=f"{asset.name.lower()}-above-{slug_strike}-on-{day:%B}-{day.day}".lower(),
                    question=f"Will the price of {asset.name} be above ${label} on {day:%B} {day.day}?",
                    description=(
                        f"This market will resolve to Yes if the Binance {symbol}/USDT 1 minute candle for "
                        f"12:00 ET on {day:%B} {day.day} has a final close price higher than {label}."
                    ),
                    symbol=symbol, kind="strike", end=end, created=now, outcomes=("Yes", "No"),
                    event_slug=f"{asset.name.lower()}-above-on-{day:%B}-{day.day}".lower(),
                    event_title=f"{asset.name} above ___ on {day:%B} {day.day}?",
                    strike=strike, group_item_title=label, fees_enabled=k % 2 == 1,
                )  # fmt: skip

    def _prune(self, now: datetime) -> None:
        for market in [m for m in self.markets.values() if m.closed and m.end < now - CLOSED_KEEP]:
            del self.markets[market.condition_id], self._by_slug[market.slug]
            for token in market.tokens:
                self._by_token.pop(token, None)
                self._books.pop(token, None)

    def _resolve(self, market: SimMarket, winner: int | None) -> None:
        if winner is None and market.symbol is not None:
            final = self._spot_at(market.symbol, market.end.timestamp())
            if market.kind == "updown" and market.window_start is not None:
                winner = 0 if final >= self._spot_at(market.symbol, market.window_start.timestamp()) else 1
            elif market.strike is not None:
                winner = 0 if Decimal(repr(final)) > market.strike else 1
        market.closed, market.winner = True, winner
        self.record("resolution", {"condition_id": market.condition_id, "slug": market.slug, "winner": winner})

    def resolve(self, condition_id: str, winner: int | None = None) -> SimMarket:
        """Close a market now (tests, demos); the winner is computed from the path if not given."""
        with self.lock:
            market = self.markets[condition_id]
            market.end = min(market.end, self.now())
            self._resolve(market, winner)
            return market

    def market_list(self) -> list[SimMarket]:
        with self.lock:
            self._refresh(self.now())
            return sorted(self.markets.values(), key=lambda m: m.gamma_id)

    def market(self, condition_id: str) -> SimMarket | None:
        with self.lock:
            self._refresh(self.now())
            return self.markets.get(condition_id)

    def market_by_slug(self, slug: str) -> SimMarket | None:
        with self.lock:
            self._refresh(self.now())
            return self._by_slug.get(slug)

    def market_for_token(self, token_id: str) -> dict[str, Any] | None:
        """The Gamma-shaped row of the market holding `token_id`, or None."""
        with self.lock:
            now = self.now()
            self._refresh(now)
            found = self._by_token.get(token_id)
            return self.gamma_row(found[0], now) if found else None

    def sim_market_for_token(self, token_id: str) -> tuple[SimMarket, int] | None:
        with self.lock:
            self._refresh(self.now())
            return self._by_token.get(token_id)

    # --- fair value and books ----------------------------------------------------------------

    def fair_yes(self, market: SimMarket, now: datetime, lag: float = 0.0) -> float:
        """P(first outcome) from the spot `lag` seconds ago; a resolved market is 1 or 0."""
        if market.closed:
            return 1.0 if market.winner == 0 else 0.0
        if market.symbol is None:
            return market.fixed_fair if market.fixed_fair is not None else 0.5
        seen = now.timestamp() - lag
        spot = self._spot_at(market.symbol, seen)
        if market.kind == "updown" and market.window_start is not None:
            started = market.window_start.timestamp()
            strike = self._spot_at(market.symbol, started) if seen >= started else spot
        else:
            strike = float(market.strike or 1)
        tau = max((market.end - now).total_seconds(), 1.0) / YEAR_SECONDS
        sigma = float(self.settings["annual_vol"])
        d2 = (math.log(spot / strike) - 0.5 * sigma * sigma * tau) / (sigma * math.sqrt(tau))
        return min(max(_phi(d2), 0.0), 1.0)

    def _quote(self, market: SimMarket, index: int, now: datetime) -> tuple[Decimal, Decimal]:
        fair = self.fair_yes(market, now, float(self.settings["book_lag_seconds"]))
        center = Decimal(repr(fair if index == 0 else 1 - fair))
        half, tick = Decimal(str(self.settings["half_spread"])), market.tick
        bid = ((center - half) / tick).to_integral_value(ROUND_FLOOR) * tick
        ask = ((center + half) / tick).to_integral_value(ROUND_CEILING) * tick
        bid, ask = min(max(bid, tick), 1 - 2 * tick), min(max(ask, 2 * tick), 1 - tick)
        if ask <= bid:
            ask = bid + tick
        return bid, ask

    def _book_state(self, token_id: str, now: datetime) -> tuple[SimMarket, BookState]:
        self._refresh(now)
        found = self._by_token.get(token_id)
        if found is None:
            raise KeyError(token_id)
        market, index = found
        state = self._books.get(token_id)
        if market.closed:
            empty = BookState((Decimal(0), Decimal(0)), now.timestamp(), {}, {})
            return market, empty
        quote = self._quote(market, index, now)
        stale = state is None or state.quote != quote
        if stale or now.timestamp() - state.built_at > float(self.settings["replenish_seconds"]):  # type: ignore[union-attr]
            state = self._build(token_id, market, quote, now)
            self._books[token_id] = state
        return market, state  # type: ignore[return-value]

    def _build(self, token_id: str, market: SimMarket, quote: tuple[Decimal, Decimal], now: datetime) -> BookState:
        rng = random.Random(f"{self.seed}:{token_id}:{quote[0]}:{quote[1]}")
        tick, levels = market.tick, int(self.settings["levels"])

        def size() -> Decimal:
            return Decimal(rng.randrange(2000, 40000)) / 100

        bids = {quote[0] - i * tick: size() for i in range(levels) if quote[0] - i * tick >= tick}
        asks = {quote[1] + i * tick: size() for i in range(levels) if quote[1] + i * tick <= 1 - tick}
        return BookState(quote, now.timestamp(), bids, asks)

    def book(self, token_id: str) -> dict[str, Any]:
        """The CLOB `GET /book` payload; KeyError for an unknown token. Best levels come last,
        as on the CLOB (bids ascending, asks descending); a closed market's book is empty."""
        with self.lock:
            now = self.now()
            market, state = self._book_state(token_id, now)
            payload = {
                "market": market.condition_id,
                "asset_id": token_id,
                "timestamp": str(int(now.timestamp() * 1000)),
                "hash": "",
                "bids": [{"price": num(p), "size": num(s)} for p, s in sorted(state.bids.items())],
                "asks": [{"price": num(p), "size": num(s)} for p, s in sorted(state.asks.items(), reverse=True)],
                "min_order_size": num(market.min_size),
                "tick_size": num(market.tick),
                "neg_risk": market.neg_risk,
                "last_trade_price": num(market.last_trade) if market.last_trade is not None else "0.5",
            }
            serialized = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            payload["hash"] = hashlib.sha1(serialized.encode()).hexdigest()
            return payload

    def available(self, token_id: str, side: str, limit_price: Decimal) -> Decimal:
        """Shares on the book at or better than `limit_price` for a taker on `side`."""
        with self.lock:
            _, state = self._book_state(token_id, self.now())
            return sum((s for p, s in self._crossing(state, side, limit_price)), Decimal(0))

    @staticmethod
    def _crossing(state: BookState, side: str, limit: Decimal) -> list[tuple[Decimal, Decimal]]:
        if side == "BUY":
            return sorted((p, s) for p, s in state.asks.items() if p <= limit)
        if side == "SELL":
            return sorted(((p, s) for p, s in state.bids.items() if p >= limit), reverse=True)
        raise ValueError(f"side must be BUY or SELL, got {side!r}")

    def take(self, token_id: str, side: str, limit_price: Decimal, size: Decimal) -> list[tuple[Decimal, Decimal]]:
        """Consume up to `size` shares at or better than `limit_price`, best first.

        Returns the (price, size) fills; the caller decides FOK by checking `available` first.
        """
        with self.lock:
            market, state = self._book_state(token_id, self.now())
            book_side = state.asks if side == "BUY" else state.bids
            fills = []
            remaining = size
            for price, level in self._crossing(state, side, limit_price):
                if remaining <= 0:
                    break
                taken = min(level, remaining)
                fills.append((price, taken))
                remaining -= taken
                if taken == level:
                    del book_side[price]
                else:
                    book_side[price] = level - taken
            if fills:
                market.last_trade = fills[-1][0]
            return fills

    # --- Gamma rows -----------------------------------------------------------------------

    def gamma_row(self, market: SimMarket, now: datetime) -> dict[str, Any]:
        """A `/markets` row in Gamma's shape (see shared/fixtures/polymarket)."""
        fair = self.fair_yes(market, now, float(self.settings["book_lag_seconds"]))
        if market.closed:
            prices = ["1", "0"] if market.winner == 0 else ["0", "1"] if market.winner == 1 else ["0.5", "0.5"]
        else:
            yes = Decimal(repr(fair)).quantize(Decimal("0.001"))
            prices = [num(yes), num(1 - yes)]
        bid, ask = (float(x) for x in self._quote(market, 0, now)) if not market.closed else (0.0, 1.0)
        volume = 5000 + int.from_bytes(digest(self.seed, market.slug, "volume")[:3]) / 100
        row: dict[str, Any] = {
            "id": str(market.gamma_id),
            "question": market.question,
            "conditionId": market.condition_id,
            "slug": market.slug,
            "resolutionSource": CHAINLINK.format(slug=ASSETS[market.symbol].slug) if market.symbol else "",
            "endDate": iso(market.end),
            "liquidity": f"{volume / 4:.4f}",
            "startDate": iso(market.created),
            "image": "",
            "icon": "",
            "description": market.description,
            "outcomes": json.dumps(list(market.outcomes)),
            "outcomePrices": json.dumps(prices),
            "volume": f"{volume:.6f}",
            "active": True,
            "closed": market.closed,
            "marketMakerAddress": "",
            "createdAt": iso(market.created),
            "updatedAt": iso(now),
            "new": False,
            "featured": False,
            "archived": False,
            "restricted": True,
            "groupItemTitle": market.group_item_title,
            "groupItemThreshold": "0",
            "questionID": market.question_id,
            "enableOrderBook": True,
            "orderPriceMinTickSize": float(market.tick),
            "orderMinSize": int(market.min_size) if market.min_size == int(market.min_size) else float(market.min_size),
            "volumeNum": volume,
            "liquidityNum": volume / 4,
            "endDateIso": market.end.date().isoformat(),
            "startDateIso": market.created.date().isoformat(),
            "hasReviewedDates": True,
            "clobTokenIds": json.dumps(list(market.tokens)),
            "acceptingOrders": not market.closed,
            "negRisk": market.neg_risk,
            "ready": False,
            "funded": False,
            "acceptingOrdersTimestamp": iso(market.created),
            "cyom": False,
            "approved": True,
            "spread": round(ask - bid, 4),
            "lastTradePrice": float(market.last_trade) if market.last_trade is not None else round(fair, 2),
            "bestBid": bid,
            "bestAsk": ask,
            "automaticallyActive": True,
            "umaResolutionStatuses": '["resolved"]' if market.closed else "[]",
            "rfqEnabled": False,
            "holdingRewardsEnabled": False,
            "feesEnabled": market.fees_enabled,
            "requiresTranslation": False,
        }
        if market.window_start is not None:
            row["eventStartTime"] = iso(market.window_start)
        if market.fees_enabled:
            row["feeSchedule"] = market.fee_schedule
        return row

    # --- faults ---------------------------------------------------------------------------

    def set_fault(self, service: str, fault: Fault) -> None:
        with self.lock:
            self.faults[service] = fault

    def clear_faults(self, service: str | None = None) -> None:
        with self.lock:
            if service is None:
                self.faults.clear()
            else:
                self.faults.pop(service, None)

    def consume_fault(self, service: str, modes: Iterable[str]) -> Fault | None:
        """The active fault of `service` if its mode is one of `modes`, counted as used."""
        with self.lock:
            fault = self.faults.get(service)
            if fault is None or fault.mode not in set(modes):
                return None
            if fault.skip > 0:
                fault.skip -= 1
                return None
            if fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    del self.faults[service]
            return fault
