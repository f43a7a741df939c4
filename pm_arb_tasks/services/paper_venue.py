"""The paper venue: fills against the stored order book, with the market's own taker fee.

It answers in the same `ExecutionResult` shape as the live venue, so nothing after the executor
can tell them apart. It refuses (never guesses) when the book is missing or stale.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from redis.exceptions import RedisError

from pm_arb_tasks.domain.fees import schedule_for
from pm_arb_tasks.domain.fills import walk_asks
from pm_arb_tasks.domain.models import ExecutionResult, Side, TradeRequest, TradeStatus
from pm_arb_tasks.services.execution import OrderRefused, PreparedOrder, result_for
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.market_data import get_market_and_book
from pm_arb_tasks.state.redis_client import get_redis

# The paper venue's own order log, like a real venue's: one JSON entry per order it filled,
# with the moment the order reached it (benchmarks measure tick-to-order up to here).
PAPER_ORDER_LOG = "pm_arb:paper:orders"
PAPER_ORDER_LOG_SIZE = 10_000


class PaperVenue:
    mode = "paper"

    def prepare(self, request: TradeRequest, now: datetime) -> PreparedOrder:
        """What the executor checks before the call; the book is the venue's to read, as a live
        venue matches against its own book after the order reached it."""
        if request.side is not Side.BUY:
            raise OrderRefused(TradeStatus.REJECTED, "paper venue only buys")
        return PreparedOrder()

    def submit(self, request: TradeRequest, order: PreparedOrder, now: datetime) -> ExecutionResult:
        """The order reaches the venue at `now`; it fills against the stored book, or is refused
        (never guessed) when the market or its book is missing or the book is stale. A book that
        cannot be read is a refusal too, not an ambiguous outcome: this venue filled nothing."""
        try:
            market, book = get_market_and_book(request.market_id, request.token_id)
        except (RedisError, OSError) as exc:
            raise OrderRefused(TradeStatus.FAILED, f"order book unreadable: {type(exc).__name__}") from exc
        if market is None:
            raise OrderRefused(TradeStatus.REJECTED, f"unknown market {request.market_id}")
        if book is None:
            raise OrderRefused(TradeStatus.FAILED, "no order book")
        max_age = timedelta(seconds=3 * get_settings().book_poll_seconds)
        if now - book.observed_at > max_age:
            raise OrderRefused(TradeStatus.FAILED, f"stale order book ({(now - book.observed_at).seconds}s old)")
        fill = walk_asks(book.asks, request.limit_price, request.amount, request.order_type, schedule_for(market))
        if not fill.shares:
            raise OrderRefused(TradeStatus.FAILED, "not enough liquidity at or below the limit price")
        if fill.shares < market.min_order_size:
            raise OrderRefused(
                TradeStatus.REJECTED, f"{fill.shares} shares is below the minimum order size {market.min_order_size}"
            )
        status = TradeStatus.FILLED if fill.complete else TradeStatus.PARTIAL
        result = result_for(
            request, self.mode, status, "", now,
            filled_amount=fill.shares, fill_price=fill.vwap, fee=fill.fee, filled_at=now,
            order_id=f"paper-{request.request_id}",
        )
        entry = json.dumps(
            {"order_id": result.order_id, "at": now.isoformat(), "result": result.model_dump(mode="json")}
        )
        pipe = get_redis().pipeline(transaction=False)
        pipe.rpush(PAPER_ORDER_LOG, entry).ltrim(PAPER_ORDER_LOG, -PAPER_ORDER_LOG_SIZE, -1).execute()
        return result

    def recover(self, request: TradeRequest, order_hash: str | None, now: datetime) -> ExecutionResult:
        """Ask the paper venue's own log, as the live venue is asked about a hash: an executor killed
        after the fill but before storing it must report the fill, not a failure."""
        order_id = f"paper-{request.request_id}"
        for raw in reversed(get_redis().lrange(PAPER_ORDER_LOG, 0, -1)):
            entry = json.loads(raw)
            if entry.get("order_id") == order_id and "result" in entry:
                return ExecutionResult.model_validate(entry["result"])
        return result_for(request, self.mode, TradeStatus.FAILED, "executor interrupted before the fill", now)
