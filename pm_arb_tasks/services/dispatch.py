"""Sending one trade request down the chain risk -> execute -> persist -> alert.

Risk and execute carry Celery `expires` = the request's deadline, so a request that waited in a
queue (a paused executor, a backlog) is discarded instead of placed late; persist and alert never
expire, because a result that exists must be recorded.
"""

from __future__ import annotations

from celery import chain

from pm_arb_tasks.domain.models import TradeRequest


def trade_chain(request: TradeRequest) -> chain:
    from pm_arb_tasks.tasks import pipeline

    return chain(
        pipeline.review.s(request.model_dump(mode="json")).set(expires=request.deadline),
        pipeline.execute_order.s().set(expires=request.deadline),
        pipeline.persist_outcome.s(),
        pipeline.alert_outcome.s(),
    )


def dispatch(request: TradeRequest) -> None:
    trade_chain(request).apply_async()


def submit(request: TradeRequest) -> None:
    """Queue a ready-made request on the scan queue; it expires there too, so a backlog of
    submissions is discarded at its deadline instead of growing without bound."""
    from pm_arb_tasks.tasks import pipeline

    pipeline.submit.apply_async(args=[request.model_dump(mode="json")], expires=request.deadline)
