"""Deterministic opportunities: one tradable market per scripted oracle tick, in a quiet universe.

The spot alternates between LOW and HIGH = LOW * 1.02 (set on the simulator before each poll).
Before tick k, a fresh market k is seeded with a book priced for the spot *before* the tick:
- tick up:   strike 0.99 * HIGH, YES asks 0.50, NO asks 0.99 (YES is out of the money until the tick)
- tick down: strike 1.01 * LOW,  YES asks 0.99, NO asks 0.50 (NO is out of the money until the tick)
The tick moves the spot across the strike, so the side quoted at 0.50 is suddenly worth ~0.7 to
~1.0 (depending on the volatility estimate anywhere between VOL_FLOOR and VOL_CAP, 15 minutes to
resolution): exactly one trade request per tick, on a market of its own (the guardian's per-market
cooldown), fee-free so the edge does not depend on the fee schedule. `check_design` verifies the
numbers with the product's own pricing.

The rest of the universe (`background`) is `markets - 1` strike markets whose asks sit at 0.99 on
both sides: priced every tick like any market, never tradable. Their books are re-stored every
`BOOK_REFRESH_SECONDS`, as the book poll would.

For the live series each opportunity market is also listed on the simulator's CLOB
(`VenueScenario`), under the simulator's own token ids, with asks from CHEAP on the side the tick
makes worth buying: the live executor reads that book (tick size, minimum size) and its FOK order
fills there. The books the scanner reads stay the bench's own, in Redis, as for the paper series.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from pm_arb_tasks.domain.models import Book, BookLevel, Market, MarketKind, Tick
from pm_arb_tasks.sim.scenario import Scenario
from pm_arb_tasks.state import market_data

SYMBOL = "BTC"
LOW = Decimal("70000")
HIGH = LOW * Decimal("1.02")
CHEAP, DEAR = Decimal("0.50"), Decimal("0.99")
DEPTH = Decimal(1000)
RESOLVES_IN = timedelta(minutes=15)
BOOK_REFRESH_SECONDS = 1.5


def spot_after(k: int) -> Decimal:
    """Tick k moves the spot up when k is even, down when odd (the spot starts at LOW)."""
    return HIGH if k % 2 == 0 else LOW


def goes_up(k: int) -> bool:
    """Tick k raises the spot (YES becomes worth buying) rather than lowering it (NO does)."""
    return spot_after(k) > spot_after(k - 1)


def _books(market: Market, yes_ask: Decimal, no_ask: Decimal, now: datetime) -> list[Book]:
    def book(token: str, ask: Decimal) -> Book:
        asks = tuple(BookLevel(price=min(ask + Decimal("0.01") * i, DEAR), size=DEPTH) for i in range(3))
        return Book(token_id=token, asks=asks, bids=(BookLevel(price=Decimal("0.01"), size=DEPTH),), observed_at=now)

    return [book(market.yes_token_id, yes_ask), book(market.no_token_id, no_ask)]


def _strike_market(
    market_id: str, strike: Decimal, resolves_at: datetime, tokens: tuple[str, str] | None = None
) -> Market:
    yes, no = tokens or (f"{market_id}-yes", f"{market_id}-no")
    return Market(
        market_id=market_id, symbol=SYMBOL, kind=MarketKind.STRIKE, strike=strike, resolves_at=resolves_at,
        question=f"Will the price of Bitcoin be above ${strike:,.0f}?", yes_token_id=yes, no_token_id=no,
    )


def opportunity(k: int, now: datetime, tokens: tuple[str, str] | None = None) -> tuple[Market, list[Book]]:
    """Market k and its books, priced so that tick k (and only tick k) makes one side worth buying.

    `tokens`: (YES, NO) token ids the market trades under at a venue (the live series' simulator).
    """
    up = goes_up(k)
    strike = (HIGH * Decimal("0.99") if up else LOW * Decimal("1.01")).quantize(Decimal(1))
    market = _strike_market(f"0xbenchopp{k:07d}", strike, now + RESOLVES_IN, tokens)
    yes_ask, no_ask = (CHEAP, DEAR) if up else (DEAR, CHEAP)
    return market, _books(market, yes_ask, no_ask, now)


class VenueScenario(Scenario):
    """The simulator's world, where the live series lists each of its opportunity markets.

    A market without a symbol and with a fixed fair value is quoted around that value whatever the
    spot does, so listing it with the bought side's fair value at CHEAP minus the half spread puts
    that side's best ask at CHEAP, like the book the bench stores for the scanner. Its sizes are the
    simulator's own (20-400 shares a level, five levels up to CHEAP + 0.04): at least 100 shares
    below any limit the design allows (>= CHEAP + 0.05), enough for MAX_TRADE_SIZE, so FOK fills.
    """

    def list_opportunity(self, k: int, resolves_at: datetime) -> tuple[str, str]:
        """List live opportunity k on the simulated venue; its (YES, NO) token ids."""
        with self.lock:
            fair_cheap_side = CHEAP - Decimal(str(self.settings["half_spread"]))
            fair_yes = fair_cheap_side if goes_up(k) else 1 - fair_cheap_side
            market = self._add(
                slug=f"bench-live-opportunity-{k}", question=f"Bench live opportunity {k}",
                description="A bench market quoted around a fixed fair value.", symbol=None, kind="other",
                end=resolves_at, created=self.now(), outcomes=("Yes", "No"), event_slug=f"bench-live-{k}",
                event_title="Bench live opportunities", fixed_fair=float(fair_yes),
            )
            bought = market.tokens[0 if goes_up(k) else 1]
            best = min(Decimal(level["price"]) for level in self.book(bought)["asks"])
        if best != CHEAP:
            raise AssertionError(f"live opportunity {k}: the simulator asks {best} on the bought side, not {CHEAP}")
        return market.tokens


class Universe:
    """The markets the scanner sees, kept in Redis through the product's own market-data module.

    With `venue`, every opportunity market is listed there too, under the venue's token ids.
    """

    def __init__(self, markets: int, now: datetime, keep_recent: int = 1, venue: VenueScenario | None = None):
        self.venue = venue
        rng = random.Random(markets)
        self.background = [
            _strike_market(
                f"0xbenchbg{i:05d}", Decimal(rng.randrange(60000, 80000, 250)),
                now + timedelta(hours=rng.randint(1, 72)),
            )
            for i in range(max(markets - 1, 0))
        ]
        self.recent: deque[Market] = deque(maxlen=keep_recent)
        self._refreshed: datetime | None = None
        market_data.save_markets(self.background)
        self.refresh_books(now)
        self._track()

    def seed_history(self, now: datetime, seconds: int = 60) -> None:
        """A minute of flat oracle history (enough returns for a volatility estimate)."""
        market_data.save_ticks(
            Tick(symbol=SYMBOL, price=LOW, observed_at=now - timedelta(seconds=s), provider="bench")
            for s in range(seconds, 0, -1)
        )

    def refresh_books(self, now: datetime, force: bool = True) -> None:
        if not force and self._refreshed and (now - self._refreshed).total_seconds() < BOOK_REFRESH_SECONDS:
            return
        market_data.save_books(book for m in self.background for book in _books(m, DEAR, DEAR, now))
        self._refreshed = now

    def add(self, k: int, now: datetime) -> Market:
        """Store market k and its books, and make it (with the last few) part of the tracked universe."""
        tokens = self.venue.list_opportunity(k, now + RESOLVES_IN) if self.venue is not None else None
        market, books = opportunity(k, now, tokens)
        market_data.save_markets([market])
        market_data.save_books(books)
        self.recent.append(market)
        self.refresh_books(now, force=False)
        self._track()
        return market

    def keep(self, n: int) -> None:
        """Keep the last `n` opportunity markets tracked (flowing ticks overlap their scans)."""
        self.recent = deque(self.recent, maxlen=n)

    def _track(self) -> None:
        markets: Iterable[Market] = [*self.background, *self.recent]
        market_data.track_markets(markets, [SYMBOL])


def check_design(now: datetime, vol_floor: Decimal, vol_cap: Decimal, min_edge: Decimal) -> None:
    """Fail fast if the scripted ticks would not produce exactly the intended edges."""
    from pm_arb_tasks.domain.pricing import fair_yes

    for k in (0, 1):
        market, _ = opportunity(k, now)
        before, after = spot_after(k - 1), spot_after(k)
        for sigma in (vol_floor, vol_cap):
            yes_before, yes_after = fair_yes(market, before, sigma, now), fair_yes(market, after, sigma, now)
            if goes_up(k):  # up: YES at 0.50 becomes cheap; nothing was cheap before
                worth = (yes_after - CHEAP, yes_before - CHEAP, 1 - yes_before - DEAR)
            else:
                worth = (1 - yes_after - CHEAP, 1 - yes_before - CHEAP, yes_before - DEAR)
            if not (worth[0] >= min_edge + Decimal("0.05") and max(worth[1:]) < min_edge):
                raise AssertionError(f"tick {k} at sigma {sigma}: edges {worth} do not single out one trade")
