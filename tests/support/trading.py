"""Seed data for trading tests: one market with a fresh book, and requests against it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from sqlalchemy import func, select

from pm_arb_tasks.db.models import AlertRow, PaperTradeRow, RiskDecisionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import Book, BookLevel, Market, MarketKind, Outcome, RiskDecision, TradeRequest
from pm_arb_tasks.risk import book
from pm_arb_tasks.services.paper_venue import PAPER_ORDER_LOG
from pm_arb_tasks.settings import get_settings
from pm_arb_tasks.state.market_data import save_books, save_markets
from pm_arb_tasks.state.redis_client import get_redis


def seed_market(market_id: str = "0xmarket1", ask: str = "0.50", depth: str = "1000") -> Market:
    market = Market(
        market_id=market_id, symbol="BTC", kind=MarketKind.STRIKE, strike=D("70000"),
        resolves_at=datetime.now(UTC) + timedelta(days=1),
        yes_token_id=f"{market_id}-yes", no_token_id=f"{market_id}-no",
        question="Will the price of Bitcoin be above $70,000 on April 20?",
    )
    save_markets([market])
    now = datetime.now(UTC)
    save_books(
        Book(token_id=token, asks=(BookLevel(price=D(ask), size=D(depth)),),
             bids=(BookLevel(price=D(ask) - D("0.02"), size=D(depth)),), observed_at=now)
        for token in (market.yes_token_id, market.no_token_id)
    )
    return market


def make_request(market: Market, amount: str = "3", ttl: float = 30, limit: str = "0.55") -> TradeRequest:
    now = datetime.now(UTC)
    return TradeRequest(
        market_id=market.market_id, token_id=market.yes_token_id, outcome=Outcome.YES,
        amount=D(amount), limit_price=D(limit), fair_value=D("0.60"), expected_edge=D("0.05"),
        expected_fee=D("0"), tick_at=now, deadline=now + timedelta(seconds=ttl),
    )


def approved(request: TradeRequest, mode: str | None = None) -> RiskDecision:
    """An approval of the whole request, recorded and reserved as the guardian would (in `mode`,
    by default the configured one): the executor claims nothing whose approval is not on record."""
    now = datetime.now(UTC)
    mode = mode or get_settings().trading_mode
    with session_scope() as session:
        if session.scalar(select(RiskDecisionRow.id).where(RiskDecisionRow.request_id == request.request_id)):
            return RiskDecision(request=request, approved=True, approved_amount=request.amount, decided_at=now)
        book.lock_total(session, mode, now)
        session.add(RiskDecisionRow(
            request_id=request.request_id, market_id=request.market_id, outcome=request.outcome.value, mode=mode,
            approved=True, reason="approved", requested_amount=request.amount, approved_amount=request.amount,
            decided_at=now,
        ))
        book.add_exposure(session, mode, request.market_id, request.amount, now)
    return RiskDecision(request=request, approved=True, approved_amount=request.amount, decided_at=now)


def paper_orders() -> list[str]:
    """Order ids in the paper venue's log, in arrival order."""
    return [json.loads(entry)["order_id"] for entry in get_redis().lrange(PAPER_ORDER_LOG, 0, -1)]


def trade_rows() -> list[PaperTradeRow]:
    with session_scope() as session:
        return list(session.scalars(select(PaperTradeRow).order_by(PaperTradeRow.id)))


def count(model: type, **filters: object) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model).filter_by(**filters)) or 0


def alert_count(**filters: object) -> int:
    return count(AlertRow, **filters)
