"""Smoke run of the benchmark (`python -m bench --quick`) so that it cannot rot.

It starts the whole measured set-up (product and floor workers from the Procfile, relay processes,
a private Redis server on a free port, a fresh PostgreSQL schema, the simulator) with a handful of
iterations, and checks that every row of the table is there with usable numbers. No assertion on
absolute times: those belong to BENCHMARKS.md, not to CI.
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


def expected_rows() -> dict[str, list[str]]:
    """Section title prefix -> row names that must be present."""
    series = ["tick-to-order (paper, product stack)", "bare Celery chain, no-op tasks"]
    return {
        LATENCY: [*series, *STAGES, "bare Redis relay (LPUSH/BRPOP)", "ratio tick-to-order ÷ bare Celery",
                  "ratio bare Celery ÷ bare Redis"],
        "Celery hops": [f"{q}: broker hop (sent→received)" for q in ("scan", "risk", "execute")],
        "Kill switch": ["orders placed after stop() was called", "stop() duration (ms)",
                        "last order minus stop() return (ms)"],
        "Scanner": [f"scan pure {SCAN_SIZE:,} markets", f"scan redis {SCAN_SIZE:,} markets"],
        "Gamma": ["parse_market on generated rows"],
        "Memory": [*(f"product {w}" for w in ("oracle", "markets", "scan", "risk", "execute", "persist")),
                   "beat", "flower", "whole stack (product workers + beat + flower)"],
        "Hot path": ["poll", "scan", "risk", "execute→venue", "execute after venue", "persist", "alert"],
        "CPU": ["all worker processes"],
        "Redis commands": ["all commands"],
        "Database rows": ["paper_trades", "order_claims", "risk_decisions"],
    }


# Rows whose numbers must be > 0 (latencies, rates, sizes); the others must only be finite
# (a broker hop can be slightly negative: `task-sent` is stamped after the publish returns;
# the kill-switch latency is negative when nothing left after `stop()` returned).
POSITIVE = {
    LATENCY: ["tick-to-order (paper, product stack)", "bare Celery chain, no-op tasks",
              "bare Redis relay (LPUSH/BRPOP)", "ratio tick-to-order ÷ bare Celery"],
    "Scanner": [f"scan pure {SCAN_SIZE:,} markets", f"scan redis {SCAN_SIZE:,} markets"],
    "Gamma": ["parse_market on generated rows"],
    "Memory": ["whole stack (product workers + beat + flower)"],
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
    assert section(LATENCY)["tick-to-order (paper, product stack)"]["n"] == 4
    text = markdown.read_text()
    assert "<!-- bench:begin" in text and "<!-- bench:end -->" in text and "tick-to-order" in text
