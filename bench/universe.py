"""Deterministic opportunities: one tradable market per scripted oracle tick, in a fixed universe.

The spot alternates between LOW and HIGH = LOW * 1.02 (set on the simulator before each poll).
The universe holds `SLOTS` opportunity markets (even slots "up", odd ones "down") beside the
quiet `background`, all tracked from the start, so it does not change between ticks: as in
production, where discovery changes the universe every 30 s, the scanner prepares it once. Before
tick k, slot k % SLOTS gets a book priced for the spot *before* the tick (and the previous slot
its quiet book back):
- tick up:   strike 0.99 * HIGH, YES asks 0.50, NO asks 0.99 (YES is out of the money until the tick)
- tick down: strike 1.01 * LOW,  YES asks 0.99, NO asks 0.50 (NO is out of the money until the tick)
The tick moves the spot across the strike, so the side quoted at 0.50 is suddenly worth ~0.7 to
~1.0 (depending on the volatility estimate anywhere between VOL_FLOOR and VOL_CAP, 5 to 15 minutes
to resolution): exactly one trade request per tick, fee-free so the edge does not depend on the
fee schedule. `check_design` verifies the numbers with the product's own pricing. A slot comes
back every `SLOTS` ticks (about a second at the fastest), beyond the bench's per-market cooldown
(`MARKET_COOLDOWN_SECONDS`, kept above zero so the scan still makes its cooldown claims).

Every other market asks 0.99 on both sides: priced every tick like any market, never tradable.
Their books are re-stored every `BOOK_REFRESH_SECONDS`, as the book poll would.

For the live series each slot is also listed on the simulator's CLOB (`VenueScenario`), under
the simulator's own token ids, with asks from CHEAP on the side its ticks make worth buying: the
live executor reads that book (tick size, minimum size; cached for 30 s by the executor, as for a
market traded again in production) and its FOK order fills there. Forty slots keep each one's
simulated book (five levels, refilled every 30 s) deep enough for every order of a full run. The
books the scanner reads stay the bench's own, in Redis, as for the paper series.
"""

from __future__ import annotations

import random
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
SLOTS = 40  # even: a slot's parity is its ticks' direction


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


def slot_market(slot: int, now: datetime, tokens: tuple[str, str] | None = None) -> Market:
    """Opportunity slot `slot`: a strike the ticks of its parity move the spot across.

    `tokens`: (YES, NO) token ids the market trades under at a venue (the live series' simulator).
    """
    strike = (HIGH * Decimal("0.99") if goes_up(slot) else LOW * Decimal("1.01")).quantize(Decimal(1))
    return _strike_market(f"0xbenchopp{slot:03d}", strike, now + RESOLVES_IN, tokens)


def lagging_books(market: Market, k: int, now: datetime) -> list[Book]:
    """The books that make tick k (and only tick k) worth buying on one side of `market`."""
    yes_ask, no_ask = (CHEAP, DEAR) if goes_up(k) else (DEAR, CHEAP)
    return _books(market, yes_ask, no_ask, now)


class VenueScenario(Scenario):
    """The simulator's world, where the live series lists each of its opportunity markets.

    A market without a symbol and with a fixed fair value is quoted around that value whatever the
    spot does, so listing it with the bought side's fair value at CHEAP minus the half spread puts
    that side's best ask at CHEAP, like the book the bench stores for the scanner. Its sizes are the
    simulator's own (20-400 shares a level, five levels up to CHEAP + 0.04): at least 100 shares
    below any limit the design allows (>= CHEAP + 0.05), enough for MAX_TRADE_SIZE, so FOK fills.
    """

    def list_opportunity(self, k: int, resolves_at: datetime) -> tuple[str, str]:
        """List opportunity slot k on the simulated venue; its (YES, NO) token ids."""
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

    With `venue`, every opportunity slot is listed there too, under the venue's token ids.
    """

    def __init__(self, markets: int, now: datetime, venue: VenueScenario | None = None):
        rng = random.Random(markets)
        self.background = [
            _strike_market(
                f"0xbenchbg{i:05d}", Decimal(rng.randrange(60000, 80000, 250)),
                now + timedelta(hours=rng.randint(1, 72)),
            )
            for i in range(max(markets - SLOTS, 0))
        ]
        self.slots = [
            slot_market(s, now, venue.list_opportunity(s, now + RESOLVES_IN) if venue is not None else None)
            for s in range(SLOTS)
        ]
        self.current: int | None = None  # the slot with lagging books, if any
        self._refreshed: datetime | None = None
        market_data.save_markets([*self.background, *self.slots])
        self.refresh_books(now)
        market_data.track_markets([*self.background, *self.slots], [SYMBOL])

    def seed_history(self, now: datetime, seconds: int = 60) -> None:
        """A minute of flat oracle history (enough returns for a volatility estimate)."""
        market_data.save_ticks(
            Tick(symbol=SYMBOL, price=LOW, observed_at=now - timedelta(seconds=s), provider="bench")
            for s in range(seconds, 0, -1)
        )

    def _quiet(self) -> list[Market]:
        return [*self.background, *(m for s, m in enumerate(self.slots) if s != self.current)]

    def refresh_books(self, now: datetime, force: bool = True) -> None:
        if not force and self._refreshed and (now - self._refreshed).total_seconds() < BOOK_REFRESH_SECONDS:
            return
        market_data.save_books(book for m in self._quiet() for book in _books(m, DEAR, DEAR, now))
        self._refreshed = now

    def add(self, k: int, now: datetime) -> Market:
        """Make tick k's slot the lagging one (the previous slot quiet again); returns its market."""
        books = []
        if self.current is not None:
            books += _books(self.slots[self.current], DEAR, DEAR, now)
        self.current = k % SLOTS
        market = self.slots[self.current]
        market_data.save_books([*books, *lagging_books(market, k, now)])
        self.refresh_books(now, force=False)
        return market


def check_design(now: datetime, vol_floor: Decimal, vol_cap: Decimal, min_edge: Decimal) -> None:
    """Fail fast if the scripted ticks would not produce exactly the intended edges."""
    from pm_arb_tasks.domain.pricing import fair_yes

    for k in (0, 1):
        for left in (RESOLVES_IN, RESOLVES_IN / 3):  # at the start of a run and long after it
            market = slot_market(k, now)
            at = market.resolves_at - left
            before, after = spot_after(k - 1), spot_after(k)
            for sigma in (vol_floor, vol_cap):
                yes_before, yes_after = fair_yes(market, before, sigma, at), fair_yes(market, after, sigma, at)
                if goes_up(k):  # up: YES at 0.50 becomes cheap; nothing was cheap before
                    worth = (yes_after - CHEAP, yes_before - CHEAP, 1 - yes_before - DEAR)
                else:
                    worth = (1 - yes_after - CHEAP, 1 - yes_before - CHEAP, yes_before - DEAR)
                if not (worth[0] >= min_edge + Decimal("0.05") and max(worth[1:]) < min_edge):
                    raise AssertionError(
                        f"tick {k} at sigma {sigma}, {left} to go: edges {worth} do not single out one trade"
                    )
