"""CLOB order book reads: batched `POST /books` and single `GET /book?token_id=`.

The CLOB sends prices and sizes as strings and does not promise any level order (it usually
lists the best level last). The parser drops levels that are not a price strictly inside (0, 1)
with a positive size, merges duplicate prices, and sorts bids best (highest) first and asks
best (lowest) first, which is what `Book` promises. `observed_at` is our receive time: the
staleness rule is about how old our view is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import requests

from pm_arb_tasks.adapters.http import UpstreamError, make_session, request_json
from pm_arb_tasks.adapters.parsing import short, to_positive
from pm_arb_tasks.domain.models import Book, BookLevel

log = logging.getLogger(__name__)
BATCH = 100  # token ids per POST /books
MAX_LEVELS = 500  # per side; deeper levels are irrelevant to a $20 order and cost parse time


def book_session() -> requests.Session:
    """`POST /books` is a read, so it may be retried like a GET."""
    return make_session(retry_methods=("GET", "POST"), timeout=(2.0, 4.0))


class BookReader:
    def __init__(self, base_url: str, session: requests.Session) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    def books(self, token_ids: Sequence[str], now: datetime) -> list[Book]:
        """Books for `token_ids`, `BATCH` per request; a failed batch is logged and skipped."""
        ids = list(dict.fromkeys(token_ids))
        books: list[Book] = []
        for start in range(0, len(ids), BATCH):
            body = [{"token_id": token_id} for token_id in ids[start : start + BATCH]]
            try:
                payload = request_json(self.session, "POST", f"{self.base_url}/books", json_body=body)
            except UpstreamError as exc:
                log.warning("clob books: batch of %d failed: %s", len(body), exc)
                continue
            books.extend(parse_books(payload, now))
        return books

    def book(self, token_id: str, now: datetime) -> Book | None:
        """One book; None when the CLOB has none for the token (404) or sent garbage."""
        try:
            payload = request_json(self.session, "GET", f"{self.base_url}/book", params={"token_id": token_id})
        except UpstreamError as exc:
            if exc.status != 404:
                log.warning("clob book %s: %s", token_id[:20], exc)
            return None
        return parse_book(payload, now)


def parse_books(payload: object, now: datetime) -> list[Book]:
    if not isinstance(payload, list):
        log.warning("clob books: expected a list, got %s", short(payload))
        return []
    return [book for raw in payload if (book := parse_book(raw, now)) is not None]


def parse_book(raw: object, now: datetime) -> Book | None:
    """One `/book` object -> `Book`; None (one log line) without a usable asset id."""
    if not isinstance(raw, dict):
        log.warning("clob book: dropped non-object %s", short(raw))
        return None
    token_id = raw.get("asset_id")
    if not isinstance(token_id, str) or not 0 < len(token_id) <= 100:
        log.warning("clob book: dropped book without asset_id %s", short(raw))
        return None
    tick = to_positive(raw.get("tick_size"))
    return Book(
        token_id=token_id,
        bids=_levels(raw.get("bids"), token_id, "bids", best_first_high=True),
        asks=_levels(raw.get("asks"), token_id, "asks", best_first_high=False),
        observed_at=now,
        tick_size=tick if tick is not None and tick < 1 else None,
        min_order_size=to_positive(raw.get("min_order_size")),
    )


def _levels(raw: object, token_id: str, side: str, *, best_first_high: bool) -> tuple[BookLevel, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        log.warning("clob book %s: dropped %s %s", token_id[:20], side, short(raw))
        return ()
    sizes: dict[Decimal, Decimal] = {}
    dropped = 0
    for level in raw[: MAX_LEVELS * 2]:
        price = to_positive(level.get("price")) if isinstance(level, dict) else None
        size = to_positive(level.get("size")) if isinstance(level, dict) else None
        if price is None or size is None or price >= 1:
            dropped += 1
            continue
        sizes[price] = sizes.get(price, Decimal(0)) + size
    if dropped:
        log.warning("clob book %s: dropped %d bad %s level(s)", token_id[:20], dropped, side)
    ordered = sorted(sizes.items(), reverse=best_first_high)[:MAX_LEVELS]
    return tuple(BookLevel(price=price, size=size) for price, size in ordered)

