"""Gamma market discovery: paginated `GET /markets`, and the row parser.

A Gamma row becomes a `Market` with its kind decided from its own text, never guessed:

- strike: "Will the price of Bitcoin be above $70,000 on April 20?" -> symbol, strike, and the
  resolution time from `endDate` (whose New York date must be the one in the question);
- Up/Down window: slug `{asset}-updown-{15m|1h|4h|1d}-{unix_start}` or question
  "Bitcoin Up or Down - ...", outcomes Up/Down, window start from `eventStartTime` (the slug's
  start when absent; the two must agree when both are present), resolution from `endDate`;
- anything else, or a crypto-looking row missing a field the scanner needs (tick size, minimum
  size, both token ids, times), is UNCLASSIFIED: stored and counted, never traded.

`clobTokenIds`, `outcomes` and `outcomePrices` are JSON-encoded strings. A closed market whose
`outcomePrices` are exactly 1/0 carries its winning outcome.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import requests

from pm_arb_tasks.adapters.http import UpstreamError, request_json
from pm_arb_tasks.adapters.parsing import (
    json_list,
    json_object,
    short,
    to_bool,
    to_datetime,
    to_decimal,
    to_positive,
)
from pm_arb_tasks.domain.models import FeeSchedule, Market, MarketKind, Outcome

log = logging.getLogger(__name__)
NEW_YORK = ZoneInfo("America/New_York")
ASSETS = {
    "bitcoin": "BTC", "btc": "BTC",
    "ethereum": "ETH", "eth": "ETH",
    "solana": "SOL", "sol": "SOL",
    "xrp": "XRP",
}  # fmt: skip
_ASSET_NAMES = "Bitcoin|Ethereum|Solana|XRP|BTC|ETH|SOL"
STRIKE_QUESTION = re.compile(
    rf"^Will (?:the price of )?(?P<asset>{_ASSET_NAMES}) be above "
    r"\$(?P<strike>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?) on (?P<month>[A-Z][a-z]+) (?P<day>\d{1,2})\?$"
)
UPDOWN_QUESTION = re.compile(rf"^(?P<asset>{_ASSET_NAMES}) Up or Down\b")
STRIKE_SLUG = re.compile(r"^(?P<asset>bitcoin|ethereum|solana|xrp)-above-")  # e.g. bitcoin-above-70k-on-april-20
UPDOWN_SLUG = re.compile(r"^(?P<asset>[a-z]+)-updown-(?P<n>\d{1,3})(?P<unit>[mhd])-(?P<start>\d{9,11})$")
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
MONTHS = {
    name: number
    for number, name in enumerate(
        ("January", "February", "March", "April", "May", "June", "July", "August",
         "September", "October", "November", "December"),
        start=1,
    )
}  # fmt: skip
MAX_ID = 100  # the markets table's token id width
DEFAULT_PAGE_SIZE = 100
DEFAULT_MAX_PAGES = 100
DEFAULT_HORIZON = timedelta(days=7)


class GammaClient:
    """Read-only Gamma access on a shared keep-alive session (see adapters.http)."""

    def __init__(
        self,
        base_url: str,
        session: requests.Session,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.url = base_url.rstrip("/") + "/markets"
        self.session = session
        self.page_size = page_size
        self.max_pages = max_pages

    def pages(self, params: dict[str, Any]) -> Iterator[list[Any]]:
        """Every page of `/markets` for `params`, by limit/offset, until a short page.

        Raises UpstreamError when a page fails: a discovery round is all or nothing, so a
        half-read listing never replaces a complete one.
        """
        for page in range(self.max_pages):
            query = {**params, "limit": self.page_size, "offset": page * self.page_size}
            rows = request_json(self.session, "GET", self.url, params=query)
            if not isinstance(rows, list):
                raise UpstreamError(f"gamma: expected a list of markets, got {short(rows, 80)}")
            yield rows
            if len(rows) < self.page_size:
                return
        log.warning("gamma: stopped after %d pages of %d; raise max_pages", self.max_pages, self.page_size)

    def active_rows(self, now: datetime, horizon: timedelta = DEFAULT_HORIZON) -> list[Any]:
        """Open markets resolving between now and now + horizon, deduplicated by conditionId."""
        params = {
            "active": "true",
            "closed": "false",
            "archived": "false",
            "end_date_min": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "end_date_max": (now + horizon).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        return _dedupe(row for page in self.pages(params) for row in page)

    def rows_for_conditions(self, condition_ids: Iterable[str], chunk: int = 50) -> list[Any]:
        """Rows for known markets whatever their state (to learn closures and winners)."""
        ids = list(dict.fromkeys(condition_ids))
        rows: list[Any] = []
        for start in range(0, len(ids), chunk):
            params = {"condition_ids": ids[start : start + chunk]}
            for page in self.pages(params):
                rows.extend(page)
        return _dedupe(rows)


def _dedupe(rows: Iterable[Any]) -> list[Any]:
    """Offset pages can shift under us while new markets appear; keep the first copy."""
    seen: set[str] = set()
    unique = []
    for row in rows:
        key = row.get("conditionId") if isinstance(row, dict) else None
        if isinstance(key, str):
            if key in seen:
                continue
            seen.add(key)
        unique.append(row)
    return unique


CONDITION_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")  # a CTF condition id: 32 bytes, hex


def parse_market(row: object) -> Market | None:
    """A Gamma row -> `Market`; None (one log line) when it has no usable condition id."""
    if not isinstance(row, dict):
        log.warning("gamma: dropped non-object row %s", short(row))
        return None
    condition_id = row.get("conditionId")
    if not isinstance(condition_id, str) or not CONDITION_ID.match(condition_id.strip()):
        log.warning(
            "gamma: dropped row without a valid condition id (%s): id=%s", short(condition_id), short(row.get("id"))
        )
        return None
    try:
        return _parse(row, condition_id.strip())
    except Exception:  # one odd row must never stop discovery (invariant 6)
        log.exception("gamma: dropped unparseable row %s", condition_id)
        return None


def _text(row: dict[str, Any], key: str, limit: int = 500) -> str:
    value = row.get(key)
    return value[:limit] if isinstance(value, str) else ""


def _parse(row: dict[str, Any], condition_id: str) -> Market:
    slug, question = _text(row, "slug", 200), _text(row, "question", 1000)
    outcomes = [o for o in (json_list(row.get("outcomes")) or []) if isinstance(o, str) and o.strip()]
    tokens = [
        t for t in (json_list(row.get("clobTokenIds")) or []) if isinstance(t, str) and 0 < len(t) <= MAX_ID
    ]
    closed = to_bool(row.get("closed")) is True
    fields: dict[str, Any] = {
        "market_id": condition_id,
        "gamma_id": str(row.get("id"))[:40] if isinstance(row.get("id"), str | int) else "",
        "slug": slug,
        "question": question,
        "active": to_bool(row.get("active")) is True,
        "closed": closed,
        "accepting_orders": (
            to_bool(row.get("acceptingOrders")) is True
            and to_bool(row.get("enableOrderBook")) is not False
            and not closed
        ),
        "neg_risk": to_bool(row.get("negRisk")) is True,
        "fees_enabled": to_bool(row.get("feesEnabled")) is True,
        "fee_schedule": parse_fee_schedule(row.get("feeSchedule")),
        "resolves_at": to_datetime(row.get("endDate")),
    }
    tick_size, min_size = to_positive(row.get("orderPriceMinTickSize")), to_positive(row.get("orderMinSize"))
    binary = len(outcomes) == 2 and len(tokens) == 2
    if binary:
        fields.update(
            outcomes=(outcomes[0][:40], outcomes[1][:40]),
            yes_token_id=tokens[0],
            no_token_id=tokens[1],
            winning_outcome=_winner(row) if closed else None,
        )
    if tick_size is not None and tick_size < 1:
        fields["tick_size"] = tick_size
    if min_size is not None:
        fields["min_order_size"] = min_size

    kind_fields, problem = _classify(row, slug, question, outcomes, fields["resolves_at"])
    if problem is None and not (isinstance(row.get("question"), str) and row["question"].strip()):
        problem = f"question is {short(row.get('question'))}"  # nothing to classify by: say so, never guess
    schedule = fields["fee_schedule"]
    bad_fees = row.get("feeSchedule") is not None and schedule is None
    if fields["fees_enabled"] and (bad_fees or (schedule is not None and schedule.rate == 0)) and problem is None:
        # A fee we cannot read is a fee we cannot price: the fallback could be below the real one.
        problem = f"fees enabled but unreadable feeSchedule {short(row.get('feeSchedule'))}"
    elif bad_fees:
        log.warning("gamma: %s ignored bad feeSchedule %s (fees off)", condition_id[:18], short(row.get("feeSchedule")))
    if kind_fields and problem is None:
        if not binary:
            problem = f"needs 2 outcomes and 2 token ids, got {short(row.get('outcomes'))}"
        elif "tick_size" not in fields or "min_order_size" not in fields:
            problem = (
                f"bad tick size {short(row.get('orderPriceMinTickSize'))} "
                f"or minimum size {short(row.get('orderMinSize'))}"
            )
    if kind_fields and problem is None:
        fields.update(kind_fields)
    elif kind_fields or problem:
        fields["symbol"] = kind_fields.get("symbol")  # counted per symbol, never traded
        log.warning("gamma: %s (%s) left unclassified: %s", condition_id[:18], slug or question[:60], problem)
    return Market(**fields)


def _classify(
    row: dict[str, Any], slug: str, question: str, outcomes: list[str], resolves_at: datetime | None
) -> tuple[dict[str, Any], str | None]:
    """(kind fields, None) when recognised; ({}, None) when not crypto; (partial, reason) when broken."""
    slug_match = UPDOWN_SLUG.match(slug)
    question_match = UPDOWN_QUESTION.match(question)
    if slug_match or question_match:
        asset = (slug_match or question_match)["asset"].lower()  # type: ignore[index]
        symbol = ASSETS.get(asset)
        if symbol is None:
            return {}, None
        found = {"symbol": symbol, "kind": MarketKind.UPDOWN}
        return found, _updown_problem(row, slug_match, outcomes, resolves_at, found)
    strike_match = STRIKE_QUESTION.match(question)
    if strike_match:
        symbol = ASSETS.get(strike_match["asset"].lower())
        if symbol is None:
            return {}, None
        strike = to_positive(strike_match["strike"].replace(",", ""))
        found = {"symbol": symbol, "kind": MarketKind.STRIKE, "strike": strike}
        if strike is None:
            return found, f"bad strike in {question!r}"
        if resolves_at is None:
            return found, f"bad endDate {short(row.get('endDate'))}"
        local = resolves_at.astimezone(NEW_YORK)
        if (MONTHS.get(strike_match["month"]), int(strike_match["day"])) != (local.month, local.day):
            return found, f"endDate {resolves_at.isoformat()} is not the date in {question!r}"
        if [o.lower() for o in outcomes] != ["yes", "no"]:
            return found, f"outcomes {outcomes} are not Yes/No"
        return found, None
    slug_strike = STRIKE_SLUG.match(slug)
    if slug_strike:  # the slug says crypto strike market, the question says otherwise: never guess which
        found = {"symbol": ASSETS[slug_strike["asset"]], "kind": MarketKind.STRIKE}
        return found, f"question {short(row.get('question'))} is not a strike question"
    return {}, None


def _updown_problem(
    row: dict[str, Any],
    slug_match: re.Match[str] | None,
    outcomes: list[str],
    resolves_at: datetime | None,
    found: dict[str, Any],
) -> str | None:
    """Fills found["window_start"]; returns why the window cannot be trusted, or None."""
    if [o.lower() for o in outcomes] != ["up", "down"]:
        return f"outcomes {outcomes} are not Up/Down"
    if resolves_at is None:
        return f"bad endDate {short(row.get('endDate'))}"
    start = to_datetime(row.get("eventStartTime"))
    if start is None and row.get("eventStartTime") is not None:  # present but unreadable: never guess around it
        return f"bad eventStartTime {short(row.get('eventStartTime'))}"
    if slug_match:
        slug_start = datetime.fromtimestamp(int(slug_match["start"]), tz=resolves_at.tzinfo)
        length = timedelta(seconds=int(slug_match["n"]) * UNIT_SECONDS[slug_match["unit"]])
        if start is None:
            start = slug_start
        elif start != slug_start:
            return f"eventStartTime {start.isoformat()} disagrees with the slug start {slug_start.isoformat()}"
        if resolves_at - start != length:
            return f"window {start.isoformat()}..{resolves_at.isoformat()} is not {slug_match['n']}{slug_match['unit']}"
    if start is None:
        return f"no window start (eventStartTime {short(row.get('eventStartTime'))})"
    if start >= resolves_at:
        return f"window start {start.isoformat()} not before its end {resolves_at.isoformat()}"
    found["window_start"] = start
    return None


def _winner(row: dict[str, Any]) -> Outcome | None:
    """Exactly ["1", "0"] or ["0", "1"] on a closed market; anything else is not known yet."""
    prices = [to_decimal(p) for p in (json_list(row.get("outcomePrices")) or [])]
    if prices == [Decimal(1), Decimal(0)]:
        return Outcome.YES
    if prices == [Decimal(0), Decimal(1)]:
        return Outcome.NO
    return None


def parse_fee_schedule(value: object) -> FeeSchedule | None:
    """`{"rate": 0.07, "exponent": 1, "takerOnly": true, ...}` (object or JSON string) or None."""
    data = json_object(value)
    if data is None:
        return None
    rate, exponent = to_decimal(data.get("rate")), to_decimal(data.get("exponent", 1))
    if rate is None or exponent is None or not 0 <= rate < 1 or not 0 < exponent <= 10:
        return None
    taker_only = to_bool(data.get("takerOnly"))
    return FeeSchedule(rate=rate, exponent=exponent, taker_only=True if taker_only is None else taker_only)
