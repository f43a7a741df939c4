"""Percentiles and summaries (linear interpolation between closest ranks, as numpy's default)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    """p50/p90/p99 of one latency series, in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    mean: float

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Summary:
        ms = [v * 1000 for v in values]
        mean = sum(ms) / len(ms) if ms else math.nan
        return cls(len(ms), percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), mean)


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan
