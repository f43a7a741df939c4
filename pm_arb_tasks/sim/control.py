"""Steering the simulator over HTTP (tests, demos and benchmarks all drive it this way).

    GET    /sim/state                      spot prices, settings, faults, market count, clock
    POST   /sim/spot      {"symbol", "price"}                       set a spot price now
    POST   /sim/jump      {"symbol", "pct" | "to", "in_seconds"?}   push a jump (now or later)
    POST   /sim/lag       {"seconds"}                               book repricing lag
    POST   /sim/settings  {"settlement_delay_seconds": 10, ...}     any scenario knob
    POST   /sim/fault     {"service", "mode"?, "status"?, "times"?, "skip"?, "retry_after"?, "value"?, "body"?}
    DELETE /sim/fault     [?service=]                               clear faults
    POST   /sim/resolve   {"condition_id", "winner"?: "YES"|"NO"}   close a market now
    GET    /sim/markets   [?symbol=&kind=]                          the market set, Gamma rows
    GET    /sim/log       [?kind=&since=]                           orders, alerts, ... received
    POST   /sim/release                                             free held order posts (clob_orders)

Services for faults: binance, coinbase, coingecko, gamma, clob, pushover (see `Fault` for modes).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from pm_arb_tasks.sim.common import error, reply, scenario
from pm_arb_tasks.sim.scenario import Fault, iso, num

control = Blueprint("sim_control", __name__, url_prefix="/sim")

SERVICES = ("binance", "coinbase", "coingecko", "gamma", "clob", "pushover")
MODES = ("status", "truncated", "html", "raw", "value", "garbage")


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite")
    return number


def _state() -> dict[str, Any]:
    sim = scenario()
    with sim.lock:
        return {
            "now": iso(sim.now()),
            "seed": sim.seed,
            "spot": {symbol: num(price) for symbol, price in sim.spots().items()},
            "settings": dict(sim.settings),
            "faults": {service: fault.as_dict() for service, fault in sim.faults.items()},
            "markets": len(sim.market_list()),
        }


@control.get("/state")
def state() -> Response:
    return reply(_state())


@control.errorhandler(ValueError)
@control.errorhandler(KeyError)
def _bad_request(exc: Exception) -> Response:
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    return error(400, str(message))


@control.post("/spot")
def set_spot() -> Response:
    body = _body()
    price = _number(body.get("price"), "price")
    if price <= 0:
        raise ValueError("price must be positive")
    scenario().set_spot(str(body.get("symbol")), price)
    return reply(_state())


@control.post("/jump")
def jump() -> Response:
    body = _body()
    pct = _number(body["pct"], "pct") if "pct" in body else None
    to = _number(body["to"], "to") if "to" in body else None
    scenario().jump(str(body.get("symbol")), pct, to=to, in_seconds=_number(body.get("in_seconds", 0), "in_seconds"))
    return reply(_state())


@control.post("/lag")
def lag() -> Response:
    seconds = _number(_body().get("seconds"), "seconds")
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    sim = scenario()
    with sim.lock:
        sim.settings["book_lag_seconds"] = seconds
    return reply(_state())


@control.post("/settings")
def settings() -> Response:
    body = _body()
    sim = scenario()
    with sim.lock:
        unknown = set(body) - set(sim.settings)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; known: {sorted(sim.settings)}")
        for name, value in body.items():
            current = sim.settings[name]
            if isinstance(current, int | float) and not isinstance(current, bool):
                body[name] = type(current)(_number(value, name))
        sim.settings.update(body)
    return reply(_state())


@control.post("/fault")
def set_fault() -> Response:
    body = _body()
    service, mode = body.get("service"), body.get("mode", "status")
    if service not in SERVICES or mode not in MODES:
        raise ValueError(f"service must be one of {SERVICES} and mode one of {MODES}")
    fault = Fault(
        mode=mode,
        times=int(_number(body.get("times", 1), "times")),
        skip=int(_number(body.get("skip", 0), "skip")),
        status=int(_number(body.get("status", 503), "status")),
        retry_after=_number(body["retry_after"], "retry_after") if "retry_after" in body else None,
        value=body.get("value"),
        body=str(body.get("body", "")),
    )
    scenario().set_fault(service, fault)
    return reply(_state())


@control.delete("/fault")
def clear_fault() -> Response:
    scenario().clear_faults(request.args.get("service"))
    return reply(_state())


@control.post("/resolve")
def resolve() -> Response:
    body = _body()
    winner = {"YES": 0, "NO": 1, None: None}[body.get("winner")]
    market = scenario().resolve(str(body.get("condition_id")), winner)
    return reply({"condition_id": market.condition_id, "closed": market.closed, "winner": market.winner})


@control.get("/markets")
def markets() -> Response:
    sim = scenario()
    symbol, kind = request.args.get("symbol"), request.args.get("kind")
    with sim.lock:
        now = sim.now()
        rows = [
            sim.gamma_row(m, now)
            for m in sim.market_list()
            if (symbol is None or m.symbol == symbol) and (kind is None or m.kind == kind)
        ]
    return reply(rows)


@control.get("/log")
def log() -> Response:
    try:
        since = int(request.args.get("since", 0))
    except ValueError:
        return error(400, "since must be an integer")
    entries = scenario().log(request.args.get("kind"), since)
    return reply({"entries": entries, "last_seq": entries[-1]["seq"] if entries else since})
