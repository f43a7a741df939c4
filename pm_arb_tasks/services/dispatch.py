"""Sending one trade request down the chain risk -> execute -> persist -> alert.

Risk and execute carry Celery `expires` = the request's deadline, so a request that waited in a
queue (a paused executor, a backlog) is discarded instead of placed late; persist and alert never
expire, because a result that exists must be recorded.

Every step carries `argsrepr`, a one-line summary of the request, which is what Flower and the
workers' log lines show for its arguments. Without it Celery builds a repr of each message's
arguments while publishing it (`saferepr` of the whole request or decision, ~0.1 ms a hop, three
of them before the order leaves), and the operator reads a nested dict instead of one line.
"""

from __future__ import annotations

from celery import chain

from pm_arb_tasks.domain.models import TradeRequest


def summary(request: TradeRequest) -> str:
    """The request in one line: id, what is bought where, how much, at most at what price."""
    return (
        f"{request.request_id}: {request.side.value} {request.outcome.value} {request.market_id}"
        f" ${request.amount} at <= {request.limit_price}"
    )


def trade_chain(request: TradeRequest) -> chain:
    from pm_arb_tasks.tasks import pipeline

    shown = summary(request)
    return chain(
        pipeline.review.s(request.model_dump(mode="json")).set(expires=request.deadline, argsrepr=f"(request {shown})"),
        pipeline.execute_order.s().set(expires=request.deadline, argsrepr=f"(decision on {shown})"),
        pipeline.persist_outcome.s().set(argsrepr=f"(result of {shown})"),
        pipeline.alert_outcome.s().set(argsrepr=f"(result of {shown})"),
    )


def dispatch(request: TradeRequest) -> None:
    trade_chain(request).apply_async()


def submit(request: TradeRequest) -> None:
    """Queue a ready-made request on the scan queue; it expires there too, so a backlog of
    submissions is discarded at its deadline instead of growing without bound."""
    from pm_arb_tasks.tasks import pipeline

    pipeline.submit.apply_async(args=[request.model_dump(mode="json")], expires=request.deadline)
