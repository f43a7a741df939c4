"""Gamma in its real shape: `GET /markets` and `GET /events`, paginated with limit/offset.

Filters the adapters use are honoured (active, closed, archived, condition_ids, slug, id,
clob_token_ids, end_date_min/max, tag_slug on events), ordering by `order`/`ascending`.
The CLOB shares two paths with Gamma on one host here: `GET /markets?next_cursor=...` (the
CLOB's cursor listing) and `GET /markets/0x...` (a CLOB market by condition id) are answered
from sim/clob_books.py. Faults: service "gamma"; a "value" fault replaces every row by the
value, a "garbage" fault corrupts one field per row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request

from pm_arb_tasks.adapters.parsing import to_datetime
from pm_arb_tasks.sim import clob_books
from pm_arb_tasks.sim.common import error, guard, reply, scenario
from pm_arb_tasks.sim.scenario import SimMarket, digest, iso

gamma = Blueprint("sim_gamma", __name__)
guard(gamma, "gamma")

DEFAULT_LIMIT = 20
MAX_LIMIT = 500
CORRUPTIONS: tuple[tuple[str, Any], ...] = (
    ("clobTokenIds", "[not json"),
    ("outcomes", None),
    ("orderPriceMinTickSize", "NaN"),
    ("endDate", ""),
    ("conditionId", 12345),
    ("eventStartTime", "yesterday"),
    ("feeSchedule", "oops"),
    ("outcomePrices", '["x", 1]'),
    ("question", {"nested": True}),
    ("orderMinSize", -5),
)
ORDER_KEYS: dict[str, Callable[[SimMarket], Any]] = {
    "id": lambda m: m.gamma_id,
    "endDate": lambda m: m.end,
    "startDate": lambda m: m.created,
    "slug": lambda m: m.slug,
}


def _flag(name: str) -> bool | None:
    value = request.args.get(name)
    return None if value is None else value.lower() == "true"


def _many(name: str) -> set[str]:
    return {part for value in request.args.getlist(name) for part in value.split(",") if part}


def _page(items: list[Any]) -> list[Any] | Response:
    try:
        limit = min(int(request.args.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
        offset = int(request.args.get("offset", 0))
    except ValueError:
        return reply({"type": "validation error", "error": "limit and offset must be integers"}, 422)
    if limit < 0 or offset < 0:
        return reply({"type": "validation error", "error": "limit and offset must be >= 0"}, 422)
    return items[offset : offset + limit]


def _date_bounds() -> tuple[datetime, datetime]:
    low = to_datetime(request.args.get("end_date_min")) or datetime.min.replace(tzinfo=UTC)
    high = to_datetime(request.args.get("end_date_max")) or datetime.max.replace(tzinfo=UTC)
    return low, high


def _matching() -> list[SimMarket]:
    closed, active, archived = _flag("closed"), _flag("active"), _flag("archived")
    condition_ids, slugs, ids, tokens = _many("condition_ids"), _many("slug"), _many("id"), _many("clob_token_ids")
    low, high = _date_bounds()
    selected = []
    for market in scenario().market_list():
        if active is False or archived is True:
            continue
        if closed is not None and market.closed != closed:
            continue
        if condition_ids and market.condition_id not in condition_ids:
            continue
        if slugs and market.slug not in slugs:
            continue
        if ids and str(market.gamma_id) not in ids:
            continue
        if tokens and not tokens & set(market.tokens):
            continue
        if not low <= market.end <= high:
            continue
        selected.append(market)
    key = ORDER_KEYS.get(request.args.get("order", "id"), ORDER_KEYS["id"])
    return sorted(selected, key=key, reverse=_flag("ascending") is False)


def _rows(markets: list[SimMarket]) -> list[Any]:
    sim = scenario()
    with sim.lock:
        now = sim.now()
        rows: list[Any] = [sim.gamma_row(m, now) for m in markets]
    fault = sim.consume_fault("gamma", ("value", "garbage"))
    if fault is not None and fault.mode == "value":
        return [fault.value for _ in rows]
    if fault is not None:
        for index, row in enumerate(rows):
            field, value = CORRUPTIONS[index % len(CORRUPTIONS)]
            row[field] = value
    return rows


@gamma.get("/markets")
def markets() -> Response:
    if "next_cursor" in request.args:
        return clob_books.cursor_listing(request.args["next_cursor"])
    page = _page(_matching())
    return page if isinstance(page, Response) else reply(_rows(page))


@gamma.get("/markets/<ref>")
def market(ref: str) -> Response:
    if ref.startswith("0x"):
        return clob_books.clob_market(ref)
    found = [m for m in scenario().market_list() if str(m.gamma_id) == ref]
    return reply(_rows(found)[0]) if found else error(404, "market not found")


@gamma.get("/events")
def events() -> Response:
    closed, tag = _flag("closed"), request.args.get("tag_slug")
    slugs = _many("slug")
    grouped: dict[str, list[SimMarket]] = {}
    for m in scenario().market_list():
        grouped.setdefault(m.event_slug, []).append(m)
    selected = []
    for slug, members in grouped.items():
        is_closed = all(m.closed for m in members)
        crypto = members[0].symbol is not None
        if (closed is not None and is_closed != closed) or (slugs and slug not in slugs):
            continue
        if tag is not None and (tag != "crypto") == crypto:
            continue
        selected.append((slug, members))
    page = _page(sorted(selected, key=lambda item: min(m.gamma_id for m in item[1])))
    if isinstance(page, Response):
        return page
    return reply([_event(slug, members) for slug, members in page])


def _event(slug: str, members: list[SimMarket]) -> dict[str, Any]:
    first = members[0]
    crypto = first.symbol is not None
    return {
        "id": str(100_000 + int.from_bytes(digest(scenario().seed, "event", slug)[:3])),
        "ticker": slug,
        "slug": slug,
        "title": first.event_title,
        "description": first.description,
        "startDate": iso(min(m.created for m in members)),
        "creationDate": iso(min(m.created for m in members)),
        "endDate": iso(max(m.end for m in members)),
        "image": "",
        "icon": "",
        "active": True,
        "closed": all(m.closed for m in members),
        "archived": False,
        "new": False,
        "featured": False,
        "restricted": True,
        "enableOrderBook": True,
        "negRisk": False,
        "commentCount": 0,
        "markets": _rows(members),
        "tags": [{"id": "21", "label": "Crypto", "slug": "crypto"}] if crypto else [],
    }
