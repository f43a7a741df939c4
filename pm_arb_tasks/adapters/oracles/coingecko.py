"""CoinGecko: one batched `GET /api/v3/simple/price?ids=bitcoin,...&vs_currencies=usd` per poll."""

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
COIN_IDS = {"BTC": "bitcoin", "ETH": "ethereum", "SOL": "solana", "XRP": "ripple"}


class CoinGeckoOracle:
    name = "coingecko"

    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.url = base_url.rstrip("/") + "/api/v3/simple/price"
        self.session = session

    def fetch(self, symbols: Sequence[str], now: datetime) -> list[Tick]:
        by_id = {COIN_IDS[s]: s for s in supported(symbols, self.name) if s in COIN_IDS}
        if not by_id:
            return []
        params = {"ids": ",".join(sorted(by_id)), "vs_currencies": "usd"}
        return parse_coingecko(request_json(self.session, "GET", self.url, params=params), by_id, now)


def parse_coingecko(payload: object, by_id: dict[str, str], now: datetime) -> list[Tick]:
    """`{"bitcoin": {"usd": 70000.12}, ...}` -> ticks; missing or bad entries dropped."""
    if not isinstance(payload, dict):
        raise UpstreamError(f"coingecko: expected an object, got {short(payload, 80)}")
    ticks = []
    for coin_id, symbol in by_id.items():
        entry = payload.get(coin_id)
        if not isinstance(entry, dict):
            log.warning("oracle coingecko: dropped %s entry %s", coin_id, short(entry))
            continue
        tick = price_tick("coingecko", symbol, entry.get("usd"), now, f"{coin_id}.usd")
        if tick is not None:
            ticks.append(tick)
    return ticks
