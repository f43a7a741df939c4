"""CLOB reads in the shapes py-clob-client-v2 parses (see its client.py):

`GET /book`, `POST /books`, `GET /tick-size` ("minimum_tick_size"), `GET /neg-risk`
("neg_risk"), `GET /fee-rate` ("base_fee"), `GET /clob-markets/<condition_id>` (compact keys:
"c", "t" tokens with "t"/"o", "mts" tick, "mos" minimum size, "nr" neg risk, "fd" fee details
{"r", "e", "to"}), `GET /markets-by-token/<token_id>` ("condition_id"), `GET /markets/<0x...>`
and the cursor listing `GET /markets?next_cursor=` (both routed here from sim/gamma.py, which
owns those paths), `GET /midpoint`, `GET /price`, `GET /time`, `GET /ok`, `GET /version`.
Faults: service "clob" (a "garbage" fault shuffles and corrupts book levels).

Orders, auth and trades live in sim/clob_orders.py (the venue engineer's), registered beside.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, request

from pm_arb_tasks.sim.common import error, guard, reply, scenario
from pm_arb_tasks.sim.scenario import BAD_VALUES, SimMarket, iso, num

clob = Blueprint("sim_clob_books", __name__)
guard(clob, "clob")

NO_BOOK = "No orderbook exists for the requested token id"
END_CURSOR = "LTE="
CURSOR_PAGE = 500
TAKER_BASE_FEE_BPS = 1000  # what the CLOB reports for fee-enabled markets; 0 when fees are off


def _book(token_id: str) -> dict[str, Any] | None:
    sim = scenario()
    with sim.lock:
        found = sim.sim_market_for_token(token_id)
        if found is None or found[0].closed:
            return None
        return sim.book(token_id)


def _corrupt(book: dict[str, Any]) -> dict[str, Any]:
    fault = scenario().consume_fault("clob", ("garbage", "value"))
    if fault is None:
        return book
    for side in ("bids", "asks"):
        levels = book[side]
        for index, level in enumerate(levels):
            bad = fault.value if fault.mode == "value" else BAD_VALUES[index % len(BAD_VALUES)]
            level["price" if index % 2 == 0 else "size"] = bad
        book[side] = levels[::-1]
    return book


@clob.get("/book")
def book() -> Response:
    token_id = request.args.get("token_id")
    if not token_id:
        return error(400, "Invalid payload")
    found = _book(token_id)
    return reply(_corrupt(found)) if found else error(404, NO_BOOK)


@clob.post("/books")
def books() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        return error(400, "Invalid payload")
    found = []
    for item in body:
        token_id = item.get("token_id")
        book = _book(token_id) if isinstance(token_id, str) else None
        if book is not None:
            found.append(_corrupt(book))
    return reply(found)


def _market_of(token_id: str | None) -> SimMarket | None:
    found = scenario().sim_market_for_token(token_id) if token_id else None
    return found[0] if found else None


@clob.get("/tick-size")
def tick_size() -> Response:
    market = _market_of(request.args.get("token_id"))
    return reply({"minimum_tick_size": float(market.tick)}) if market else error(404, "market not found")


@clob.get("/neg-risk")
def neg_risk() -> Response:
    market = _market_of(request.args.get("token_id"))
    return reply({"neg_risk": market.neg_risk}) if market else error(404, "market not found")


@clob.get("/fee-rate")
def fee_rate() -> Response:
    market = _market_of(request.args.get("token_id"))
    if market is None:
        return error(404, "market not found")
    return reply({"base_fee": TAKER_BASE_FEE_BPS if market.fees_enabled else 0})


@clob.get("/clob-markets/<condition_id>")
def clob_market_info(condition_id: str) -> Response:
    market = scenario().market(condition_id)
    if market is None:
        return error(404, "market not found")
    info: dict[str, Any] = {
        "c": market.condition_id,
        "t": [{"t": token, "o": outcome} for token, outcome in zip(market.tokens, market.outcomes, strict=True)],
        "mts": float(market.tick),
        "mos": float(market.min_size),
        "nr": market.neg_risk,
    }
    if market.fees_enabled and market.fee_schedule:
        schedule = market.fee_schedule
        info["fd"] = {"r": schedule["rate"], "e": schedule["exponent"], "to": schedule["takerOnly"]}
    return reply(info)


@clob.get("/markets-by-token/<token_id>")
def market_by_token(token_id: str) -> Response:
    market = _market_of(token_id)
    if market is None:
        return error(404, "market not found")
    primary, secondary = market.tokens
    return reply({"condition_id": market.condition_id, "primary_token_id": primary, "secondary_token_id": secondary})


def _clob_row(market: SimMarket) -> dict[str, Any]:
    sim = scenario()
    with sim.lock:
        fair = sim.fair_yes(market, sim.now(), float(sim.settings["book_lag_seconds"]))
    prices = (fair, 1 - fair)
    return {
        "enable_order_book": True,
        "active": True,
        "closed": market.closed,
        "archived": False,
        "accepting_orders": not market.closed,
        "accepting_order_timestamp": iso(market.created),
        "minimum_order_size": float(market.min_size),
        "minimum_tick_size": float(market.tick),
        "condition_id": market.condition_id,
        "question_id": market.question_id,
        "question": market.question,
        "description": market.description,
        "market_slug": market.slug,
        "end_date_iso": iso(market.end),
        "game_start_time": iso(market.window_start) if market.window_start else None,
        "seconds_delay": 0,
        "fpmm": "",
        "maker_base_fee": 0,
        "taker_base_fee": TAKER_BASE_FEE_BPS if market.fees_enabled else 0,
        "notifications_enabled": True,
        "neg_risk": market.neg_risk,
        "neg_risk_market_id": "",
        "neg_risk_request_id": "",
        "icon": "",
        "image": "",
        "rewards": {"rates": None, "min_size": 0, "max_spread": 0},
        "is_50_50_outcome": False,
        "tokens": [
            {
                "token_id": token,
                "outcome": outcome,
                "price": round(price, 4),
                "winner": market.closed and market.winner == index,
            }
            for index, (token, outcome, price) in enumerate(zip(market.tokens, market.outcomes, prices, strict=True))
        ],
        "tags": ["Crypto"] if market.symbol else [],
    }


def clob_market(condition_id: str) -> Response:
    """`GET /markets/<condition_id>` (routed from sim/gamma.py)."""
    market = scenario().market(condition_id)
    return reply(_clob_row(market)) if market else error(404, "market not found")


def cursor_listing(cursor: str) -> Response:
    """`GET /markets?next_cursor=` (routed from sim/gamma.py): base64 offsets, "LTE=" at the end."""
    try:
        offset = int(base64.b64decode(cursor).decode()) if cursor else 0
    except ValueError:
        return error(400, "invalid next_cursor")
    markets = scenario().market_list()
    page = markets[offset : offset + CURSOR_PAGE] if offset >= 0 else []
    following = offset + CURSOR_PAGE
    next_cursor = base64.b64encode(str(following).encode()).decode() if following < len(markets) else END_CURSOR
    return reply(
        {"limit": CURSOR_PAGE, "count": len(page), "next_cursor": next_cursor, "data": [_clob_row(m) for m in page]}
    )


@clob.get("/midpoint")
def midpoint() -> Response:
    found = _book(request.args.get("token_id", ""))
    if not found or not found["bids"] or not found["asks"]:
        return error(404, NO_BOOK)
    mid = (Decimal(found["bids"][-1]["price"]) + Decimal(found["asks"][-1]["price"])) / 2
    return reply({"mid": num(mid)})


@clob.get("/price")
def price() -> Response:
    found = _book(request.args.get("token_id", ""))
    side = request.args.get("side", "").upper()
    if side not in ("BUY", "SELL"):
        return error(400, "Invalid side")
    # BUY asks what a buyer pays (best ask); SELL what a seller gets (best bid).
    levels = found["asks"] if found and side == "BUY" else found["bids"] if found else []
    return reply({"price": levels[-1]["price"]}) if levels else error(404, NO_BOOK)


@clob.get("/time")
def server_time() -> Response:
    return reply(int(scenario().now().timestamp()))


@clob.get("/ok")
def ok() -> Response:
    return reply("OK")


@clob.get("/version")
def version() -> Response:
    return reply({"version": 2})

