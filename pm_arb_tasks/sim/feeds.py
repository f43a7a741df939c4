"""Spot feeds in their real shapes: Binance, Coinbase Exchange, CoinGecko.

The three serve the same scenario spot (each in its own number format), so the fallback chain
can switch providers without a price jump. Faults are per provider: "binance", "coinbase",
"coingecko"; "value" and "garbage" faults replace the prices in an otherwise valid payload.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, request

from pm_arb_tasks.sim.common import error, guard, reply, scenario
from pm_arb_tasks.sim.scenario import ASSETS, BAD_VALUES

binance = Blueprint("sim_binance", __name__)
coinbase = Blueprint("sim_coinbase", __name__)
coingecko = Blueprint("sim_coingecko", __name__)
guard(binance, "binance")
guard(coinbase, "coinbase")
guard(coingecko, "coingecko")

GECKO_IDS = {"bitcoin": "BTC", "ethereum": "ETH", "solana": "SOL", "ripple": "XRP"}


def _bad_prices(service: str, count: int) -> list[Any] | None:
    """The replacement prices for this reply when a value/garbage fault is active."""
    fault = scenario().consume_fault(service, ("value", "garbage"))
    if fault is None:
        return None
    if fault.mode == "value":
        return [fault.value] * count
    return [BAD_VALUES[i % len(BAD_VALUES)] for i in range(count)]


@binance.get("/api/v3/ticker/price")
def binance_price() -> Response:
    spots = scenario().spots()
    venue = {f"{symbol}USDT": symbol for symbol in spots}
    if "symbols" in request.args:
        try:
            wanted = json.loads(request.args["symbols"])
            assert isinstance(wanted, list) and all(isinstance(s, str) for s in wanted)
        except (ValueError, AssertionError):
            return reply({"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}, 400)
    elif "symbol" in request.args:
        wanted = [request.args["symbol"]]
    else:
        wanted = sorted(venue)
    if any(s not in venue for s in wanted):
        return reply({"code": -1121, "msg": "Invalid symbol."}, 400)
    rows: list[dict[str, Any]] = [{"symbol": s, "price": f"{spots[venue[s]]:.8f}"} for s in wanted]
    bad = _bad_prices("binance", len(rows))
    if bad is not None:
        for row, value in zip(rows, bad, strict=True):
            row["price"] = value
    return reply(rows[0] if "symbol" in request.args and "symbols" not in request.args else rows)


@coinbase.get("/products/<product_id>/ticker")
def coinbase_ticker(product_id: str) -> Response:
    symbol, _, quote = product_id.partition("-")
    sim = scenario()
    if quote != "USD" or symbol not in sim.symbols:
        return error(404, "NotFound", key="message")
    price = sim.spot(symbol)
    step = Decimal(1).scaleb(-ASSETS[symbol].decimals)
    now = sim.now()
    payload: dict[str, Any] = {
        "ask": str((price + step).quantize(step)),
        "bid": str((price - step).quantize(step)),
        "volume": "12345.67890000",
        "trade_id": int(now.timestamp()),
        "price": str(price.quantize(step)),
        "size": "0.01000000",
        "time": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "rfq_volume": "1.234500",
    }
    bad = _bad_prices("coinbase", 1)
    if bad is not None:
        payload["price"] = bad[0]
    return reply(payload)


@coingecko.get("/api/v3/simple/price")
def coingecko_price() -> Response:
    if request.args.get("vs_currencies", "").lower() != "usd" or not request.args.get("ids"):
        return error(400, "Missing parameter ids or vs_currencies (only usd is simulated)")
    spots = scenario().spots()
    ids = [i for i in request.args["ids"].split(",") if GECKO_IDS.get(i) in spots]
    payload: dict[str, Any] = {}
    for coin_id in ids:
        symbol = GECKO_IDS[coin_id]
        payload[coin_id] = {"usd": float(spots[symbol].quantize(Decimal(1).scaleb(-ASSETS[symbol].decimals)))}
    bad = _bad_prices("coingecko", len(ids))
    if bad is not None:
        for coin_id, value in zip(ids, bad, strict=True):
            payload[coin_id]["usd"] = value
    return reply(payload)
