"""Binance spot: one batched `GET /api/v3/ticker/price?symbols=["BTCUSDT",...]` per poll."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

import requests

from pm_arb_tasks.adapters.http import UpstreamError, request_json
from pm_arb_tasks.adapters.oracles import price_tick, supported
from pm_arb_tasks.adapters.parsing import short
from pm_arb_tasks.domain.models import Tick

log = logging.getLogger(__name__)
QUOTE = "USDT"


class BinanceOracle:
    name = "binance"

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.url = base_url.rstrip("/") + "/api/v3/ticker/price"
        self.session = session

    def fetch(self, symbols: Sequence[str], now: datetime) -> list[Tick]:
        by_venue = {f"{symbol}{QUOTE}": symbol for symbol in supported(symbols, self.name)}
        if not by_venue:
            return []
        param = json.dumps(sorted(by_venue), separators=(",", ":"))
        payload = request_json(self.session, "GET", self.url, params={"symbols": param})
        return parse_binance(payload, by_venue, now)


def parse_binance(payload: object, by_venue: dict[str, str], now: datetime) -> list[Tick]:
    """`[{"symbol": "BTCUSDT", "price": "70000.01000000"}, ...]` -> ticks; bad rows dropped."""
    if not isinstance(payload, list):
        raise UpstreamError(f"binance: expected a list, got {short(payload, 80)}")
    ticks = []
    for row in payload:
        venue_symbol = row.get("symbol") if isinstance(row, dict) else None
        symbol = by_venue.get(venue_symbol) if isinstance(venue_symbol, str) else None
        if symbol is None:
            log.warning("oracle binance: dropped row %s (not one of %s)", short(row), sorted(by_venue))
            continue
        tick = price_tick("binance", symbol, row.get("price"), now, f"row {short(row)}")  # type: ignore[union-attr]
        if tick is not None:
            ticks.append(tick)
    return ticks
