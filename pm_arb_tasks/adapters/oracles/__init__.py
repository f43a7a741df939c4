"""Spot-price oracles: bare symbols in ("BTC"), domain `Tick`s out.

Each provider knows its own venue format ("BTCUSDT", "BTC-USD", "bitcoin") and nothing else
does, so a suffix can never be doubled. A provider's `fetch` raises `UpstreamError` when the
call as a whole failed (the fallback chain counts that against its health) and silently drops,
with one log line each, individual values that are not usable prices.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from pm_arb_tasks.adapters.parsing import short, to_positive
from pm_arb_tasks.domain.models import Tick
from pm_arb_tasks.settings import SUPPORTED_SYMBOLS

log = logging.getLogger(__name__)


class OracleProvider(Protocol):
    name: str

    def fetch(self, symbols: Sequence[str], now: datetime) -> list[Tick]:
        """Ticks for the symbols it could price; `UpstreamError` when the call failed."""
        ...


def supported(symbols: Sequence[str], provider: str) -> list[str]:
    """The bare, known symbols; anything else (e.g. "BTCUSDT") is refused with a log line."""
    known = [s for s in symbols if s in SUPPORTED_SYMBOLS]
    for symbol in set(symbols) - set(known):
        log.warning("oracle %s: refusing unknown or non-bare symbol %s", provider, short(symbol))
    return known


def price_tick(provider: str, symbol: str, raw: Any, now: datetime, context: str) -> Tick | None:
    """A Tick when `raw` is a finite positive price; else None and one log line with context."""
    price = to_positive(raw)
    if price is None:
        log.warning("oracle %s: dropped %s price %s (%s)", provider, symbol, short(raw), context)
        return None
    return Tick(symbol=symbol, price=price, observed_at=now, provider=provider)
