"""The bare-Celery floor: the product's chain shape with no-op tasks, on the product's own config.

`app` comes from the product's factory (`make_app`: same serializers, queues, routes, prefetch,
events, transport options, time limits, worker hooks) with only the broker moved to the floor's
database and no product task modules. Its tasks are named `pm_arb.<queue>.floor_<step>` so the
product router sends them to the same queue names, and carry the product tasks' options (late
acks, `expires` on risk and execute). Workers run the Procfile's command lines with
`-A bench.floor_app`.

The chain mirrors tick-to-order: the poll task stamps `t0` and sends the scan task by name; the
scan task sends risk -> execute -> persist -> alert; execute stamps the time its "venue call"
happens and appends it to a Redis list, as the paper venue does.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import redis
from celery import chain

from bench.services import FLOOR_BROKER_ENV
from pm_arb_tasks.celery_app import make_app
from pm_arb_tasks.settings import get_settings

FLOOR_ORDERS = "bench:floor:orders"
POLL = "pm_arb.oracle.floor_poll"
SCAN = "pm_arb.scan.floor_scan"
Json = dict[str, Any]

app = make_app()
_broker = os.environ.get(FLOOR_BROKER_ENV, "")
app.conf.update(include=[], beat_schedule={}, broker_url=_broker, redbeat_redis_url=_broker)


@lru_cache(maxsize=1)
def _orders() -> redis.Redis:
    """The floor's "venue": one Redis list, like the paper venue's order log."""
    return redis.Redis.from_url(_broker)


@app.task(name=POLL, soft_time_limit=10, time_limit=12)
def floor_poll(token: str) -> None:
    t0 = time.time()
    app.send_task(SCAN, args=[token, t0], expires=get_settings().trade_ttl_seconds)


@app.task(name=SCAN, soft_time_limit=10, time_limit=12)
def floor_scan(token: str, t0: float) -> None:
    deadline = datetime.fromtimestamp(t0, UTC) + timedelta(seconds=get_settings().trade_ttl_seconds)
    chain(
        floor_review.s({"token": token, "t0": t0}).set(expires=deadline),
        floor_order.s().set(expires=deadline),
        floor_record.s(),
        floor_trade.s(),
    ).apply_async()


@app.task(name="pm_arb.risk.floor_review", acks_late=True, reject_on_worker_lost=True)
def floor_review(request: Json) -> Json:
    return request


@app.task(
    name="pm_arb.execute.floor_order", acks_late=True, reject_on_worker_lost=True, soft_time_limit=8, time_limit=10
)
def floor_order(decision: Json) -> Json:
    at = time.time()
    _orders().rpush(FLOOR_ORDERS, json.dumps({**decision, "at": at}))
    return decision


@app.task(name="pm_arb.persist.floor_record", acks_late=True, reject_on_worker_lost=True)
def floor_record(result: Json) -> Json:
    return result


@app.task(name="pm_arb.alert.floor_trade", acks_late=True)
def floor_trade(result: Json) -> None:
    return None
