"""Smoke run of the benchmark (`python -m bench --quick`) so that it cannot rot.

It starts the whole measured set-up (the paper and the live product stack and the floor workers
from the Procfile, relay processes, a private Redis server on a free port, a fresh PostgreSQL
schema per product stack, the simulator) with a handful of iterations, and checks that every row
of the table is there with usable numbers, each product series with its own stage breakdown, and
that the simulated venue filled every live order. No assertion on absolute times: those belong
to BENCHMARKS.md, not to CI.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SCAN_SIZE = 200
STAGES = ("poll→scan", "scan", "scan→risk", "risk", "risk→execute", "execute→venue")
LATENCY = "Tick-to-order against the floors (ms)"
PAPER = "tick-to-order (paper, product stack)"
LIVE = "tick-to-order (live, product stack → simulator's CLOB)"
FLOOR = "bare Celery chain, no-op tasks"
FLOOR_IO = "bare Celery chain + the order path's required round trips"
WORKERS = ("oracle", "markets", "scan", "risk", "execute", "persist")


def expected_rows() -> dict[str, list[str]]:
    """Section title prefix -> row names that must be present."""
    return {
        LATENCY: [PAPER, LIVE, FLOOR, FLOOR_IO, *STAGES, "bare Redis relay (LPUSH/BRPOP)",
                  "ratio tick-to-order ÷ bare Celery", "ratio from the oracle reply ÷ bare Celery",
                  "ratio bare Celery + required round trips ÷ bare Celery",
                  "ratio from the oracle reply ÷ (bare Celery + required round trips)",
                  "ratio tick-to-order (live) ÷ bare Celery", "ratio bare Celery ÷ bare Redis"],
        "Celery hops": [f"{q}: broker hop (sent→received)" for q in ("scan", "risk", "execute")],
        "Kill switch": ["orders placed after stop() was called", "stop() duration (ms)",
                        "last order minus stop() return (ms)"],
        "Scanner": [f"scan pure {SCAN_SIZE:,} markets", f"scan redis {SCAN_SIZE:,} markets"],
        "Gamma": ["parse_market on generated rows"],
        "Memory": [*(f"{stack} {w}" for stack in ("product", "live") for w in WORKERS), "beat", "flower",
                   "whole stack (product workers + beat + flower)", "whole stack, live (live workers + beat + flower)"],
        "Hot path": ["poll", "scan", "risk", "execute→venue", "execute after venue", "persist", "alert"],
        "CPU": ["all worker processes", "simulator process"],
        "Redis commands": ["all commands"],
        "Database rows": ["paper_trades", "live_trades", "order_claims", "risk_decisions"],
    }


# Columns a row must have: each series its own (a missing one would pass the finiteness check).
COLUMNS = {
    "Celery hops": {f"{q}: broker hop (sent→received)": [f"{s} {p}" for s in ("product", "live", "floor", "floor_io")
                                                        for p in ("p50", "p99")] for q in ("scan", "risk", "execute")},
    "CPU": {"all worker processes": ["product", "live", "floor", "floor_io", "relay"]},
    "Redis commands": {"all commands": ["product", "live", "floor", "floor_io"]},
    # the required-I/O floor's claims and decisions: it really did its round trips
    "Database rows": {"order_claims": ["paper rows", "live rows", "floor_io rows"],
                      "risk_decisions": ["paper rows", "live rows", "floor_io rows"], "paper_trades": ["paper rows"],
                      "live_trades": ["live rows"]},
}

# Rows whose numbers must be > 0 (latencies, rates, sizes); the others must only be finite
# (a broker hop can be slightly negative: `task-sent` is stamped after the publish returns;
# the kill-switch latency is negative when nothing left after `stop()` returned).
POSITIVE = {
    LATENCY: [PAPER, LIVE, FLOOR, FLOOR_IO, "bare Redis relay (LPUSH/BRPOP)", "ratio tick-to-order ÷ bare Celery",
              "ratio bare Celery + required round trips ÷ bare Celery", "ratio tick-to-order (live) ÷ bare Celery"],
    "Scanner": [f"scan pure {SCAN_SIZE:,} markets", f"scan redis {SCAN_SIZE:,} markets"],
    "Gamma": ["parse_market on generated rows"],
    "Memory": ["whole stack (product workers + beat + flower)", "whole stack, live (live workers + beat + flower)"],
}


def test_quick_benchmark_run_fills_every_row(tmp_path: Path) -> None:
    markdown, data_path = tmp_path / "BENCHMARKS.md", tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "bench", "--quick", "--iterations", "4", "--warmup", "2", "--markets", "20",
        "--scan-sizes", str(SCAN_SIZE), "--redis-port", "0", "--output", str(markdown), "--json", str(data_path),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    data = json.loads(data_path.read_text())
    sections = {s["title"]: {r["name"]: r["values"] for r in s["rows"]} for s in data["sections"]}
    latency_rows = next(s["rows"] for s in data["sections"] if s["title"] == LATENCY)  # in table order

    def section(prefix: str) -> dict[str, dict[str, float]]:
        found = [rows for title, rows in sections.items() if title.startswith(prefix)]
        assert found, f"no section {prefix!r} in {list(sections)}"
        return found[0]

    for prefix, names in expected_rows().items():
        rows = section(prefix)
        for name in names:
            assert name in rows, f"{prefix}: row {name!r} missing (have {list(rows)})"
            assert rows[name], f"{prefix}: row {name!r} has no numbers"
            for column, value in rows[name].items():
                assert isinstance(value, int | float) and math.isfinite(value), f"{prefix}/{name}/{column}: {value}"
    for prefix, names in POSITIVE.items():
        rows = section(prefix)
        for name in names:
            assert all(value > 0 for value in rows[name].values()), f"{prefix}/{name}: {rows[name]}"
    for prefix, wanted in COLUMNS.items():
        rows = section(prefix)
        for name, columns in wanted.items():
            assert set(columns) <= set(rows[name]), f"{prefix}/{name}: columns {list(rows[name])}, want {columns}"
    # Stage names repeat under each chain series (the dict above keeps the last), so check in table
    # order that each series is followed by stage rows of its own, with numbers.
    names = [r["name"] for r in latency_rows]
    for series in (PAPER, LIVE, FLOOR, FLOOR_IO):
        at = names.index(series) + 1
        stages = latency_rows[at : at + len(STAGES)]
        assert tuple(r["name"] for r in stages) == STAGES, f"{series}: rows after it are {names[at:]}"
        for row in stages:
            values = row["values"]
            assert values and all(math.isfinite(v) for v in values.values()), f"{series}/{row['name']}: {values}"
    for series in (PAPER, LIVE, FLOOR_IO):
        assert section(LATENCY)[series]["n"] == 4, f"{series}: {section(LATENCY)[series]}"
    assert data["meta"]["unfilled"] == 0, "the simulated venue refused or did not fill a live order"
    # one durable claim per required-I/O chain (2 warm-up + 4 measured): each found its approval on record
    assert section("Database rows")["order_claims"]["floor_io rows"] == 6, section("Database rows")["order_claims"]
    text = markdown.read_text()
    assert "<!-- bench:begin" in text and "<!-- bench:end -->" in text and "tick-to-order" in text
