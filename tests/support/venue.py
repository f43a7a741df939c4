"""Live-mode test setup: a simulator, a throwaway key, stores of the venue area, and helpers to
count what reached the venue (the simulator's `/sim/log`) and to see every request it received."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from eth_account import Account

from pm_arb_tasks.adapters.polymarket.gamma import parse_market
from pm_arb_tasks.domain.models import Market, OrderType, Outcome, TradeRequest
from pm_arb_tasks.sim.scenario import Scenario, SimMarket
from pm_arb_tasks.sim.server import SimServer
from pm_arb_tasks.state.market_data import save_markets
from tests.support.env import flush_redis, fresh_schema, point_process_at

REDIS_DB = 10  # the venue area's Redis databases are 10-12
CRASH_REDIS_DB = 11  # test_executor_crash.py: its workers need a broker no other venue module flushes
JUMP_REDIS_DB = 12  # test_scripted_jump.py: the whole pipeline, paper then live, on a DB no other module uses
AREA = "venue"


def new_key() -> str:
    return "0x" + bytes(Account.create().key).hex()


@contextmanager
def live_stores(sim_url: str, private_key: str, redis_db: int = REDIS_DB, **extra: str) -> Iterator[dict[str, str]]:
    """A fresh schema and Redis DB, this process pointed at them in live mode; env restored after.

    Yields the environment for worker subprocesses."""
    saved = dict(os.environ)
    with fresh_schema(AREA) as url:
        flush_redis(redis_db)
        try:
            yield point_process_at(
                redis_db=redis_db, database_url=url, PAPER_TRADING="false", POLYMARKET_PRIVATE_KEY=private_key,
                CLOB_API_URL=sim_url, GAMMA_API_URL=sim_url, **extra,
            )
        finally:
            os.environ.clear()
            os.environ.update(saved)
            from pm_arb_tasks.db.session import reset_engines
            from pm_arb_tasks.services.execution import current_venue
            from pm_arb_tasks.settings import get_settings

            get_settings.cache_clear()
            current_venue.cache_clear()
            reset_engines()


def strike_market(scenario: Scenario, fees: bool = True) -> SimMarket:
    """An open strike market of the scenario whose YES side has asks, with or without fees."""
    for market in scenario.market_list():
        if market.kind == "strike" and not market.closed and market.fees_enabled == fees:
            asks = scenario.book(market.tokens[0])["asks"]
            if asks and Decimal(asks[-1]["price"]) < Decimal("0.9"):
                return market
    raise AssertionError("the scenario has no suitable strike market")


def cache_market(scenario: Scenario, sim_market: SimMarket) -> Market:
    """The market as discovery would have cached it (parsed from the simulator's Gamma row)."""
    market = parse_market(scenario.gamma_row(sim_market, scenario.now()))
    assert market is not None
    save_markets([market])
    return market


def best_ask(scenario: Scenario, token_id: str) -> Decimal:
    return min(Decimal(level["price"]) for level in scenario.book(token_id)["asks"])


def buy_yes(
    market: Market, amount: str, limit: Decimal, order_type: OrderType = OrderType.FOK, ttl: float = 30
) -> TradeRequest:
    now = datetime.now(UTC)
    return TradeRequest(
        market_id=market.market_id, token_id=market.yes_token_id, outcome=Outcome.YES, amount=Decimal(amount),
        limit_price=limit, order_type=order_type, tick_at=now, deadline=now + timedelta(seconds=ttl),
        expected_edge=Decimal("0.03"),
    )


@dataclass(frozen=True)
class VenueLog:
    """What reached the simulated venue: POST attempts, and orders it placed."""

    scenario: Scenario

    def posts(self) -> int:
        return len(self.scenario.log("clob_post"))

    def orders(self) -> list[dict]:
        return self.scenario.log("clob_order")


@dataclass(frozen=True)
class Received:
    """One HTTP request as the simulator received it, before any of its handlers looked at it."""

    method: str
    target: str  # path and query string
    headers: dict[str, str]  # WSGI names without HTTP_: POLY_API_KEY, CONTENT_TYPE, ...
    body: str


def record_requests(sim: SimServer) -> list[Received]:
    """From now on, every request that reaches `sim` (CLOB, Gamma, Pushover...) is appended to the
    returned list: the venue's side of the wire, which its own log (`/sim/log`) only summarises.

    A WSGI middleware around the Flask app (the server calls `app.wsgi_app` per request), reading
    the body and handing the handlers an identical copy."""
    received: list[Received] = []
    inner: Callable[..., Iterable[bytes]] = sim.app.wsgi_app

    def recording(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        query = environ.get("QUERY_STRING", "")
        headers = {k.removeprefix("HTTP_"): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
        received.append(Received(
            environ["REQUEST_METHOD"], environ.get("PATH_INFO", "") + (f"?{query}" if query else ""), headers,
            body.decode(errors="replace"),
        ))  # fmt: skip
        return inner(environ, start_response)

    sim.app.wsgi_app = recording  # type: ignore[method-assign]
    return received
