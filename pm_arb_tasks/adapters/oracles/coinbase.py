"""Coinbase Exchange: `GET /products/{SYM}-USD/ticker`, one per symbol on one keep-alive session.

There is no batched ticker endpoint, so a poll makes one request per symbol. A symbol that
fails alone is left for the next provider; a 429 or a geo-block stops the round at once (more
requests would only dig the hole deeper), and a round in which every symbol failed raises, so
the fallback chain counts it against Coinbase's health.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import requests

from pm_arb_tasks.adapters.http import UpstreamError, request_json
from pm_arb_tasks.adapters.oracles import price_tick, supported
from pm_arb_tasks.adapters.parsing import short
from pm_arb_tasks.domain.models import Tick

log = logging.getLogger(__name__)


class CoinbaseOracle:
    name = "coinbase"

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    def fetch(self, symbols: Sequence[str], now: datetime) -> list[Tick]:
        ticks: list[Tick] = []
        error: UpstreamError | None = None
        for symbol in supported(symbols, self.name):
            url = f"{self.base_url}/products/{symbol}-USD/ticker"
            try:
                payload = request_json(self.session, "GET", url)
            except UpstreamError as exc:
                if exc.rate_limited or exc.blocked:
                    raise
                log.warning("oracle coinbase: %s-USD failed: %s", symbol, exc)
                error = exc
                continue
            tick = parse_coinbase(payload, symbol, now)
            if tick is not None:
                ticks.append(tick)
        if not ticks and error is not None:
            raise error
        return ticks


def parse_coinbase(payload: object, symbol: str, now: datetime) -> Tick | None:
    """`{"price": "70000.12", "bid": ..., "ask": ..., "time": ...}` -> a tick, or None."""
    if not isinstance(payload, dict):
        log.warning("oracle coinbase: dropped %s-USD payload %s", symbol, short(payload))
        return None
    return price_tick("coinbase", symbol, payload.get("price"), now, f"{symbol}-USD ticker")
