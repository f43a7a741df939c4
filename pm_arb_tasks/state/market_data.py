"""Latest market data in Redis: order books per token (JSON), read by the scanner and the paper
executor. Keys carry `pm_arb:` so they never collide with Celery's own keys."""

from __future__ import annotations

from collections.abc import Iterable

from pm_arb_tasks.domain.models import Book, Market
from pm_arb_tasks.state.redis_client import get_redis

BOOK_KEY = "pm_arb:book:{token_id}"
BOOK_TTL_SECONDS = 300


def save_books(books: Iterable[Book]) -> None:
    pipe = get_redis().pipeline(transaction=False)
    for book in books:
        pipe.set(BOOK_KEY.format(token_id=book.token_id), book.model_dump_json(), ex=BOOK_TTL_SECONDS)
    pipe.execute()


def get_book(token_id: str) -> Book | None:
    raw = get_redis().get(BOOK_KEY.format(token_id=token_id))
    return Book.model_validate_json(raw) if raw else None


MARKET_KEY = "pm_arb:market:{market_id}"
MARKET_TTL_SECONDS = 3600


def save_markets(markets: Iterable[Market]) -> None:
    pipe = get_redis().pipeline(transaction=False)
    for market in markets:
        key = MARKET_KEY.format(market_id=market.market_id)
        pipe.set(key, market.model_dump_json(), ex=MARKET_TTL_SECONDS)
    pipe.execute()


def get_market(market_id: str) -> Market | None:
    raw = get_redis().get(MARKET_KEY.format(market_id=market_id))
    return Market.model_validate_json(raw) if raw else None
