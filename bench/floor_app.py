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

A poll sent with `io=True` runs the same chain on the same workers doing, besides, only the round
trips the invariants require of the order path, each as cheap as the server allows (psycopg2's own
cursor, no ORM, no rules): the scan reads the tick in one Redis call; risk reserves under the
mode's row lock in two PostgreSQL round trips (BEGIN, the lock, the read; the decision and the
reservation, COMMIT without waiting for the WAL flush: invariant 4, as `risk.book` does it); the
executor claims the request durably in one autocommit statement that finds the approval on record
(invariant 1, as `db.claims` does it). Its tables are the product's own, migrated into a schema of
their own (`FLOOR_IO_DSN_ENV`). That series says how much of the product's time above the bare chain
any correct implementation of the order path would pay on this machine.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import redis
from celery import chain

from bench.services import FLOOR_BROKER_ENV, FLOOR_IO_DSN_ENV
from pm_arb_tasks.celery_app import make_app
from pm_arb_tasks.settings import get_settings

FLOOR_ORDERS = "bench:floor:orders"
FLOOR_TICK = "bench:floor:tick"  # what the required-I/O scan reads (one GET, like the product's one-trip read)
IO_MODE = "floor"  # a mode of its own (the column holds five characters)
POLL = "pm_arb.oracle.floor_poll"
SCAN = "pm_arb.scan.floor_scan"
Json = dict[str, Any]

app = make_app(task_modules=())
_broker = os.environ.get(FLOOR_BROKER_ENV, "")
app.conf.update(beat_schedule={}, broker_url=_broker, redbeat_redis_url=_broker)


@lru_cache(maxsize=1)
def _orders() -> redis.Redis:
    """The floor's "venue": one Redis list, like the paper venue's order log."""
    return redis.Redis.from_url(_broker)


# The required round trips' statements: the product's shapes (`risk.book`, `db.claims`), trimmed
# to what the invariants need.
_LOCK = (
    "BEGIN; INSERT INTO risk_exposure (mode, market_id, amount, updated_at) VALUES (%(mode)s, '*', 0, now())"
    " ON CONFLICT (mode, market_id) DO UPDATE SET updated_at = excluded.updated_at;"
    " SELECT (SELECT amount FROM risk_exposure WHERE mode = %(mode)s AND market_id = '*'),"
    " (SELECT id FROM risk_decisions WHERE request_id = %(request)s)"
)
_RESERVE = (
    "SET LOCAL synchronous_commit TO OFF;"
    " UPDATE risk_exposure SET amount = amount + 1 WHERE mode = %(mode)s AND market_id = '*';"
    " INSERT INTO risk_decisions (request_id, market_id, outcome, mode, approved, reason, requested_amount,"
    " approved_amount, decided_at) VALUES (%(request)s, 'floor', 'YES', %(mode)s, true, 'floor', 1, 1, now());"
    " COMMIT"
)
_CLAIM = (
    "INSERT INTO order_claims (request_id, trade_id, mode, status, claimed_at, updated_at)"
    " SELECT %(request)s, %(request)s, %(mode)s, 'claimed', now(), now() WHERE EXISTS"
    " (SELECT 1 FROM risk_decisions WHERE request_id = %(request)s AND mode = %(mode)s AND approved)"
    " ON CONFLICT DO NOTHING RETURNING request_id"
)
_connections: dict[int, Any] = {}


def _database() -> Any:
    """This process's own autocommit connection (one per forked pool child)."""
    pid = os.getpid()
    if pid not in _connections:
        import psycopg2

        connection = psycopg2.connect(os.environ[FLOOR_IO_DSN_ENV])
        connection.autocommit = True
        _connections[pid] = connection
    return _connections[pid]


def _run(sql: str, request: str) -> Any:
    """`sql` on this process's connection; one that failed is dropped, so a review that failed
    between its BEGIN and its COMMIT never leaves the mode's lock held for the next chain."""
    connection = _database()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, {"mode": IO_MODE, "request": request})
            return cursor.fetchone() if cursor.description else None
    except Exception:
        _connections.pop(os.getpid(), None)
        connection.close()
        raise


@app.task(name=POLL, soft_time_limit=10, time_limit=12)
def floor_poll(token: str, io: bool = False) -> None:
    t0 = time.time()
    app.send_task(SCAN, args=[token, t0, io], expires=get_settings().trade_ttl_seconds)


@app.task(name=SCAN, soft_time_limit=10, time_limit=12)
def floor_scan(token: str, t0: float, io: bool = False) -> None:
    deadline = datetime.fromtimestamp(t0, UTC) + timedelta(seconds=get_settings().trade_ttl_seconds)
    request: Json = {"token": token, "t0": t0}
    if io:
        _orders().get(FLOOR_TICK)
        request["io"] = uuid.uuid4().hex
    chain(
        floor_review.s(request).set(expires=deadline),
        floor_order.s().set(expires=deadline),
        floor_record.s(),
        floor_trade.s(),
    ).apply_async()


@app.task(name="pm_arb.risk.floor_review", acks_late=True, reject_on_worker_lost=True)
def floor_review(request: Json) -> Json:
    if "io" in request:
        _run(_LOCK, request["io"])
        _run(_RESERVE, request["io"])
    return request


@app.task(
    name="pm_arb.execute.floor_order", acks_late=True, reject_on_worker_lost=True, soft_time_limit=8, time_limit=10
)
def floor_order(decision: Json) -> Json:
    if "io" in decision and _run(_CLAIM, decision["io"]) is None:
        raise RuntimeError(f"floor claim of {decision['io']} found no approval on record")
    at = time.time()
    _orders().rpush(FLOOR_ORDERS, json.dumps({**decision, "at": at}))
    return decision


@app.task(name="pm_arb.persist.floor_record", acks_late=True, reject_on_worker_lost=True)
def floor_record(result: Json) -> Json:
    return result


@app.task(name="pm_arb.alert.floor_trade", acks_late=True)
def floor_trade(result: Json) -> None:
    return None
