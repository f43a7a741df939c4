"""Scan benchmark (printed, not a test): time per oracle tick and markets per second.

Paths for 1,000 and 10,000 (or --sizes) synthetic markets of one symbol (a tick only rescans its
own symbol's markets), ~2 % of them lagging:
- pure: the screen and the exact evaluation (fair value, fees, edge, limit, size) over markets and
  books already in memory, on ticks whose spot is the one the books were priced for, i.e. the
  strategy's own cost on an ordinary tick;
- redis: the whole `scan()` use case on the same ticks, with the markets, books and ticks read
  from Redis, cooldown claims and the throttled opportunity log (SQLite file), and a no-op
  dispatch. Before every tick every book is stored again with a new time (untimed), as the book
  poll does, so nothing the scanner caches by value survives from one tick to the next;
- jump (printed here only): like pure, but the spot moves 0.05 % a tick away from the books'
  price, so about half the universe (the short Up/Down windows) becomes worth buying and goes
  through the exact evaluation: a worst case, where each of them would also be a trade request.

Usage: python -m bench.bench_scan [--sizes 1000 10000] [--ticks 5]
Environment: PMARB_BENCH_REDIS_URL (default redis://127.0.0.1:6379/9, flushed before and after).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

REDIS_URL = os.environ.get("PMARB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
SPOT = D("70000")
SIGMA = D("0.5")


def _configure() -> Path:
    """Point settings at the bench Redis DB and a throwaway SQLite file, before anything imports them."""
    db_path = Path(tempfile.mkdtemp(prefix="pmarb-bench-")) / "bench.db"
    os.environ.update(
        {
            "REDIS_URL": REDIS_URL, "DATABASE_URL": f"sqlite:///{db_path}", "PAPER_TRADING": "true",
            "VOL_FLOOR": str(SIGMA), "MARKET_COOLDOWN_SECONDS": "60",
        }
    )
    return db_path


def synthetic_markets(n: int, now: datetime, rng: random.Random):  # type: ignore[no-untyped-def]
    """Strike markets across strikes and dates, and open 15-minute Up/Down windows; ~2 % lagging."""
    from pm_arb_tasks.domain.models import Book, BookLevel, FeeSchedule, Market, MarketKind
    from pm_arb_tasks.domain.pricing import fair_yes

    markets, books = [], []
    for i in range(n):
        market_id = f"0xbench{i:06d}"
        fees = {"fees_enabled": True, "fee_schedule": FeeSchedule(rate=D("0.0624"))} if i % 3 == 0 else {}
        if i % 2:
            start = now - timedelta(seconds=rng.randint(10, 800))
            market = Market(
                market_id=market_id, symbol="BTC", kind=MarketKind.UPDOWN, window_start=start,
                strike=SPOT * D(str(1 + rng.uniform(-0.002, 0.002))), resolves_at=start + timedelta(minutes=15),
                yes_token_id=f"{market_id}-y", no_token_id=f"{market_id}-n", **fees,
            )
        else:
            market = Market(
                market_id=market_id, symbol="BTC", kind=MarketKind.STRIKE,
                strike=D(rng.randrange(60000, 80000, 250)), resolves_at=now + timedelta(hours=rng.randint(1, 72)),
                yes_token_id=f"{market_id}-y", no_token_id=f"{market_id}-n", **fees,
            )
        fair = fair_yes(market, SPOT, SIGMA, now)
        lag = D("-0.06") if rng.random() < 0.02 else D("0.02")  # most books sit just above fair
        for token, prob in ((market.yes_token_id, fair), (market.no_token_id, 1 - fair)):
            ask = min(max((prob + lag).quantize(D("0.01")), D("0.01")), D("0.99"))
            levels = tuple(BookLevel(price=min(ask + D("0.01") * k, D("0.99")), size=D(200)) for k in range(3))
            books.append(Book(token_id=token, asks=levels, observed_at=now))
        markets.append(market)
    return markets, books


def bench_pure(n: int, ticks: int) -> list[float]:
    """The scan's computation alone, on the redis path's ticks, with data in memory."""
    return _in_memory(n, ticks, drift=0.0)


def bench_jump(n: int, ticks: int) -> list[float]:
    """The scan's computation alone on ticks whose spot runs away from the books' price."""
    return _in_memory(n, ticks, drift=0.0005)


def _in_memory(n: int, ticks: int, drift: float) -> list[float]:
    """The float screen of every market and the exact evaluation of what it kept; the universe's
    plan is built once, untimed, as the scanner does once per universe."""
    from pm_arb_tasks.services.scanning import ScanParams, evaluate_kept, plan_for, screen, top_of
    from pm_arb_tasks.settings import get_settings

    now = datetime.now(UTC)
    markets, books = synthetic_markets(n, now, random.Random(n))
    by_token = {book.token_id: book for book in books}
    plan = plan_for(markets)
    tops = [top_of(by_token[token]) for token in plan.tokens]
    params = ScanParams.from_settings(get_settings())
    times = []
    for k in range(1, ticks + 1):
        at = now + timedelta(milliseconds=100 * k)
        started = time.perf_counter()
        screened = screen(
            plan, tops, spot=float(SPOT) * (1 + drift * k), sigma=float(SIGMA), now=at, window_opens={},
            fresh_after=(at - params.book_max_age).timestamp(), min_edge=float(params.min_edge),
        )
        for market, outcome, fair in screened.kept:
            evaluate_kept(market, outcome, fair, books=by_token, now=at, params=params)
        times.append(time.perf_counter() - started)
    return times


def bench_redis(n: int, ticks: int) -> list[float]:
    from pm_arb_tasks.domain.models import Tick
    from pm_arb_tasks.services.scanning import scan
    from pm_arb_tasks.state import market_data
    from pm_arb_tasks.state.redis_client import get_redis

    now = datetime.now(UTC)
    markets, books = synthetic_markets(n, now, random.Random(n))
    redis = get_redis()
    redis.flushdb()
    market_data.save_markets(markets)
    market_data.track_markets(markets, ["BTC"])
    market_data.save_books(books)
    market_data.save_ticks(
        Tick(symbol="BTC", price=SPOT, observed_at=now - timedelta(seconds=s), provider="bench") for s in range(60)
    )
    times = []
    try:
        # The first scan emits the lagging markets and logs every skip once: a start-up cost, untimed.
        scan(["BTC"], now, send=lambda request: None)
        for k in range(1, ticks + 1):
            at = now + timedelta(milliseconds=100 * k)
            market_data.save_books(book.model_copy(update={"observed_at": at}) for book in books)
            started = time.perf_counter()
            scan(["BTC"], at, send=lambda request: None)
            times.append(time.perf_counter() - started)
    finally:
        redis.flushdb()
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args(argv)
    _configure()
    import logging

    logging.disable(logging.INFO)
    from pm_arb_tasks.db.migrate import upgrade
    from pm_arb_tasks.settings import get_settings

    get_settings.cache_clear()
    upgrade(get_settings().database_url)
    print(f"scan benchmark: {args.ticks} ticks per row, median shown (python {sys.version.split()[0]})")
    print(f"{'path':<8}{'markets':>9}{'ms/tick':>11}{'best ms':>10}{'markets/s':>12}")
    for n in args.sizes:
        for path, run in (("pure", bench_pure), ("redis", bench_redis), ("jump", bench_jump)):
            times = run(n, args.ticks)
            median = statistics.median(times)
            print(f"{path:<8}{n:>9}{median * 1000:>11.1f}{min(times) * 1000:>10.1f}{n / median:>12,.0f}")


if __name__ == "__main__":
    main()
