"""In-process measurements: scanner throughput (the strategy engineer's bench_scan) and Gamma parsing.

The scanner benchmark flushes its Redis database and points settings at a SQLite file, so it
runs in a child process of its own, on its own database of the bench Redis server.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/polymarket/gamma_market_btc_updown_15m.json"
BENCH_SCAN_REDIS_ENV = "PMARB_BENCH_REDIS_URL"


@dataclass(frozen=True)
class ScanRow:
    path: str  # pure | redis
    markets: int
    ms_per_tick: float  # median
    best_ms: float

    @property
    def markets_per_second(self) -> float:
        return self.markets / (self.ms_per_tick / 1000)


def _scan_child(redis_url: str, tmp_dir: str, sizes: list[int], ticks: int, out: Any) -> None:
    os.environ[BENCH_SCAN_REDIS_ENV] = redis_url
    os.environ["TMPDIR"] = tmp_dir  # bench_scan's SQLite file goes under the run's directory
    import logging

    logging.disable(logging.INFO)
    try:
        from bench import bench_scan
        from pm_arb_tasks.db.migrate import upgrade
        from pm_arb_tasks.settings import get_settings

        bench_scan._configure()
        get_settings.cache_clear()
        upgrade(get_settings().database_url)
        rows = []
        for n in sizes:
            for path, run in (("pure", bench_scan.bench_pure), ("redis", bench_scan.bench_redis)):
                times = run(n, ticks)
                rows.append((path, n, statistics.median(times) * 1000, min(times) * 1000))
        out.send(rows)
    except Exception as exc:  # reported in the table instead of failing the whole run
        out.send(f"{type(exc).__name__}: {exc}")


def scanner(redis_url: str, tmp_dir: Path, sizes: list[int], ticks: int) -> list[ScanRow] | str:
    """Rows from bench/bench_scan.py, or why there are none (the hook for a missing module)."""
    try:
        from bench import bench_scan  # noqa: F401 - only checks that the strategy benchmark exists
    except ImportError as exc:
        return f"bench/bench_scan.py not importable ({exc})"
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_scan_child, args=(redis_url, str(tmp_dir), sizes, ticks, send), daemon=True)
    child.start()
    send.close()
    try:
        rows = receive.recv() if receive.poll(600) else None
    except EOFError:
        rows = None
    child.join(timeout=30)
    if rows is None or isinstance(rows, str):
        return f"bench_scan failed: {rows or f'exit code {child.exitcode}'}"
    return [ScanRow(*row) for row in rows]


# --- Gamma ------------------------------------------------------------------------------------


def gamma_rows(n: int, now: datetime) -> list[dict[str, Any]]:
    """Rows shaped like the recorded payload: 15-minute Up/Down windows and daily strike markets,
    a third of them fee-bearing."""
    template = json.loads(FIXTURE.read_text())
    rows = []
    for i in range(n):
        row = dict(template)
        row["id"] = str(2_000_000 + i)
        row["conditionId"] = "0x" + f"{i:064x}"
        row["questionID"] = "0x" + f"{i + 10**6:064x}"
        row["clobTokenIds"] = json.dumps([str(10**75 + 2 * i), str(10**75 + 2 * i + 1)])
        if i % 2:
            start = int(now.timestamp()) // 900 * 900 + 900 * (i // 2 % 96)
            end = datetime.fromtimestamp(start + 900, UTC)
            row["slug"] = f"btc-updown-15m-{start}"
            row["eventStartTime"] = datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z")
            row["endDate"] = end.isoformat().replace("+00:00", "Z")
        else:
            end = (now + timedelta(days=1 + i % 3)).replace(hour=16, minute=0, second=0, microsecond=0)
            strike = 60000 + 250 * (i % 80)
            row["slug"] = f"bitcoin-above-{strike // 1000}k-on-{end:%B-%d}".lower()
            row["question"] = f"Will the price of Bitcoin be above ${strike:,} on {end:%B} {end.day}?"
            row["outcomes"] = json.dumps(["Yes", "No"])
            row["endDate"] = end.isoformat().replace("+00:00", "Z")
            row.pop("eventStartTime", None)
        if i % 3 == 0:  # the 2026 shape of a fee-bearing market
            row["feesEnabled"] = True
            row["feeSchedule"] = {"rate": 0.07, "exponent": 1, "takerOnly": True, "rebateRate": 0.2}
        rows.append(row)
    return rows


@dataclass(frozen=True)
class GammaResult:
    rows: int
    page_size: int
    rows_per_second: float  # parse_market only
    pages_per_second: float  # json.loads of the page body + parse_market of every row
    classified: int


def gamma_parse(rows: int, page_size: int = 100, repeats: int = 3) -> GammaResult:
    from pm_arb_tasks.adapters.polymarket.gamma import parse_market
    from pm_arb_tasks.domain.models import MarketKind

    data = gamma_rows(rows, datetime.now(UTC))
    pages = [json.dumps(data[i : i + page_size]) for i in range(0, len(data), page_size)]
    parse_best = page_best = float("inf")
    classified = 0
    for _ in range(repeats):
        started = time.perf_counter()
        markets = [parse_market(row) for row in data]
        parse_best = min(parse_best, time.perf_counter() - started)
        started = time.perf_counter()
        for body in pages:
            for row in json.loads(body):
                parse_market(row)
        page_best = min(page_best, time.perf_counter() - started)
        classified = sum(1 for m in markets if m is not None and m.kind is not MarketKind.UNCLASSIFIED)
    return GammaResult(rows, page_size, rows / parse_best, len(pages) / page_best, classified)


# --- import footprint ---------------------------------------------------------------------------

_FOOTPRINT = """
import importlib, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) * 1024
print(rss())
for name in sys.argv[1:]:
    importlib.import_module(name)
    print(rss())
"""


def import_footprint(env: dict[str, str]) -> list[tuple[str, float]]:
    """RSS of a fresh interpreter after each import a worker makes: what every worker process pays."""
    import subprocess
    import sys

    from pm_arb_tasks.celery_app import TASK_MODULES

    modules = ["celery", "pm_arb_tasks", *TASK_MODULES]
    out = subprocess.run(
        [sys.executable, "-c", _FOOTPRINT, *modules], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    sizes = [int(x) for x in out]
    labels = ["python", *modules]
    return [(label, size) for label, size in zip(labels, sizes, strict=True)]
