"""DESIGN.md invariant 7 end to end (issue 5, "secrets"): a live run with a known key, then every
place a secret could land is searched for it, with zero hits.

The run: real worker processes in LIVE mode (PAPER_TRADING=false, a throwaway key), one per
Procfile role the trade chain needs (scan+risk, execute, persist+alert), and Flower as the
Procfile starts it (`pm-arb flower`, behind basic auth), against the simulator with the real
py-clob-client-v2. Twice: with the API credentials configured in the environment, and with none,
so the executor derives them from the key (`create_or_derive_api_key`) at start-up and again after
a 401. Four trade requests go down the chain with `dispatch.submit`: one is refused by the venue
(an error reply: not enough balance, which also raises a high-priority Pushover alert), three fill,
one of them after a 401 on its first post (credentials re-derived, posted again). A fifth is left
approved on the execute queue of a paused executor, so a real trade message is still in Redis
when it is searched.

Searched, for the private key (with and without 0x), the API key, the API secret and the
passphrase, ignoring case (a hex key may be printed in upper case):
- every worker's and Flower's log file;
- every key of the test's Redis DB, each value read by its type (strings, lists, hashes, sets,
  sorted sets, streams), with the base64 bodies of Kombu's messages (queues, unacked) decoded;
- every column of every table of the test's schema (each row as JSON);
- Flower's /api/tasks and /api/task/info/<id> for every task it lists;
- the simulator's own log (orders, posts, the Pushover alerts) and every HTTP request it received
  as it received it, except the L1/L2 auth headers (POLY_*), which must carry the credentials,
  and the order's `owner` field, which the protocol requires to be the API key.

The search cannot pass vacuously: each source must contain what this run certainly put there
(request ids, the venue's order ids, the refusal's text, a canary task's argument, the chain's
later steps inside a base64 message body, the signed orders), the credentials searched for are
the ones the venue saw in the auth headers, and the matcher must find an upper-case copy of the
key planted in a log.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
import redis
import requests
from py_clob_client_v2.client import ClobClient
from py_clob_client_v2.clob_types import ApiCreds
from sqlalchemy import func, select, text

from pm_arb_tasks.celery_app import app
from pm_arb_tasks.db.models import AlertRow, LiveTradeRow, RiskDecisionRow
from pm_arb_tasks.db.session import session_scope
from pm_arb_tasks.domain.models import Market, TradeRequest
from pm_arb_tasks.services.alerts import Delivery
from pm_arb_tasks.services.dispatch import submit
from pm_arb_tasks.sim.server import SimServer, running_sim
from tests.support.env import redis_url
from tests.support.ops import PUSHOVER_TOKEN, PUSHOVER_USER, SECRETS_REDIS_DB, Flower, running_flower
from tests.support.venue import Received, best_ask, buy_yes, cache_market, live_stores, new_key, record_requests
from tests.support.venue import strike_market as find_strike_market
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
CONFIGURED, DERIVED = "configured", "derived"
FLOWER_LOGIN = ("operator", "secrets-test-Pa55word")
FILLS = 3
# One per post, in order: the first post is refused for balance (an error reply and a high
# alert), the second gets a 401 (the credentials are re-derived and the same order posted again).
POST_FAULTS = ["balance", "401"]
TUNING = {"MARKET_COOLDOWN_SECONDS": "0", "POSITION_LIMIT_PCT": "50"}  # every request on one market
SETTLED = frozenset({"SUCCESS", "FAILURE", "REVOKED", "REJECTED"})  # Flower states of a finished task
AUTH_HEADER_PREFIX = "POLY_"  # L1/L2 auth headers: the venue has to receive the credentials there
CANARY_TASK = "pm_arb.oracle.canary"  # routed to the oracle queue, which no worker of this test consumes


# ---- the search -----------------------------------------------------------------------------------


def secrets_of(private_key: str, creds: ApiCreds) -> dict[str, str]:
    """What must appear nowhere, by name (the names, never the values, go into failure messages)."""
    return {
        "private key": private_key, "private key without 0x": private_key.removeprefix("0x"),
        "API key": creds.api_key, "API secret": creds.api_secret, "API passphrase": creds.api_passphrase,
    }  # fmt: skip


def found(needles: dict[str, str], sources: dict[str, str]) -> list[str]:
    """'<needle> in <source>' for every needle that occurs in a source, ignoring case."""
    return [
        f"{name} in {source}"
        for source, haystack in sources.items()
        for name, needle in needles.items()
        if needle.casefold() in haystack.casefold()
    ]


def unwrapped(value: str) -> list[str]:
    """The value, plus the decoded body of every Kombu message inside it: the Redis transport
    stores task messages (queues, the unacked hash) with a base64 body, where a plain search would
    never see a secret in a task's arguments or in the chain's later steps."""
    try:
        data = json.loads(value)
    except ValueError:
        return [value]
    texts, stack = [value], [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            properties = item.get("properties")
            encoding = properties.get("body_encoding") if isinstance(properties, dict) else None
            if isinstance(item.get("body"), str) and encoding == "base64":
                texts.append(base64.b64decode(item["body"]).decode(errors="replace"))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return texts


def redis_dump(db: int) -> str:
    """Every key of the DB and every value it holds (SCAN, then TYPE and the type's own read)."""
    client = redis.Redis.from_url(redis_url(db))
    lines = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "hash":
            values = [part for pair in client.hgetall(key).items() for part in pair]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            values = [repr(entry).encode() for entry in client.xrange(key)]
        elif kind == "none":  # expired between SCAN and TYPE
            continue
        else:
            raise AssertionError(f"Redis key {key!r} has a type this search does not read: {kind}")
        lines.append(key.decode(errors="replace"))
        for value in values:
            lines += unwrapped((value or b"").decode(errors="replace"))
    return "\n".join(lines)


def database_dump() -> str:
    """Every row of every table of the test's schema, each as JSON: all columns, whatever their type."""
    with session_scope() as session:
        schema = session.scalar(text("SELECT current_schema()"))
        tables = session.scalars(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_type = :t"),
            {"s": schema, "t": "BASE TABLE"},
        ).all()
        assert "live_trades" in tables, f"not the migrated test schema: {tables}"
        return "\n".join(
            f"{table}: {row}"
            for table in tables
            for row in session.scalars(text(f'SELECT row_to_json(t)::text FROM "{schema}"."{table}" t'))
        )


def flower_tasks(flower: Flower) -> dict[str, dict]:
    response = requests.get(f"{flower.url}/api/tasks", auth=FLOWER_LOGIN, timeout=5)
    response.raise_for_status()
    return response.json()


def flower_dump(flower: Flower) -> str:
    """The task list and each task's own page, as Flower serves them to an operator."""
    tasks = flower_tasks(flower)
    pages = []
    for task_id in tasks:
        response = requests.get(f"{flower.url}/api/task/info/{task_id}", auth=FLOWER_LOGIN, timeout=5)
        response.raise_for_status()
        pages.append(response.text)
    return "\n".join([json.dumps(tasks), *pages])


def as_received(received: list[Received], api_key: str) -> str:
    """The requests the venue received, minus what it must receive: the auth headers, and the
    order's `owner` (the protocol's way of naming the API key that placed it)."""
    lines = []
    for request in received:
        body = request.body
        if request.method == "POST" and request.target == "/order":
            order = json.loads(body)
            assert order.pop("owner") == api_key, "an order posted under another API key than the one searched for"
            body = json.dumps(order)
        headers = {k: v for k, v in request.headers.items() if not k.startswith(AUTH_HEADER_PREFIX)}
        lines.append(f"{request.method} {request.target} {headers} {body}")
    return "\n".join(lines)


# ---- the run --------------------------------------------------------------------------------------


@dataclass
class Run:
    """What one live run left behind, by source, and what each source must contain."""

    private_key: str
    creds: ApiCreds
    sources: dict[str, str] = field(default_factory=dict)
    expected: dict[str, list[str]] = field(default_factory=dict)  # source -> values this run put there


def known_credentials(sim: SimServer, private_key: str) -> ApiCreds:
    """L2 credentials the simulator issues for the key: created by the test (to configure them),
    or derived by the same call the executor makes (after the executor created them)."""
    return ClobClient(sim.url, 137, key=private_key).create_or_derive_api_key()


def settled(requests_sent: list[TradeRequest]) -> bool:
    """Every request's trade row written and every alert delivered (Pushover is the simulator)."""
    with session_scope() as session:
        rows = session.scalar(select(func.count()).select_from(LiveTradeRow).where(
            LiveTradeRow.request_id.in_([r.request_id for r in requests_sent])))  # fmt: skip
        undelivered = session.scalar(select(func.count()).select_from(AlertRow).where(
            AlertRow.delivery.in_([Delivery.PENDING.value, Delivery.SENDING.value])))  # fmt: skip
    return rows == len(requests_sent) and undelivered == 0


def flower_caught_up(flower: Flower, traded: int) -> bool:
    """Flower lists every step of the `traded` requests' chains as succeeded (plus the parked
    request's first two), and nothing else unfinished than the canaries and the parked execute."""
    tasks = list(flower_tasks(flower).values())
    succeeded = Counter(t.get("name") for t in tasks if t.get("state") == "SUCCESS")
    unfinished = Counter(t.get("name") for t in tasks if t.get("state") not in SETTLED)
    steps = {
        "pm_arb.scan.submit": traded + 1, "pm_arb.risk.review": traded + 1, "pm_arb.execute.order": traded,
        "pm_arb.persist.record": traded, "pm_arb.alert.trade": traded,
    }  # fmt: skip
    return (
        all(succeeded[name] == count for name, count in steps.items())
        and set(unfinished) <= {CANARY_TASK, "pm_arb.execute.order"}
        and unfinished["pm_arb.execute.order"] <= 1
    )


def queued(queue: str, request: TradeRequest) -> bool:
    """The request is in a message waiting on `queue` (Kombu keeps a queue as a Redis list)."""
    client = redis.Redis.from_url(redis_url(SECRETS_REDIS_DB))
    messages = [part for raw in client.lrange(queue, 0, -1) for part in unwrapped(raw.decode(errors="replace"))]
    return any(request.request_id in message for message in messages)


def flower_sees_tasks(flower: Flower, canary: str) -> bool:
    """A canary task (never consumed) is in Flower's list: its event receiver is live. Sent again
    on every probe until one shows, since one sent before Flower bound its event queue is never seen."""
    if any(task.get("name") == CANARY_TASK for task in flower_tasks(flower).values()):
        return True
    app.send_task(CANARY_TASK, args=[canary])
    return False


def run_settings(sim_url: str, configured: ApiCreds | None) -> dict[str, str]:
    """The workers' environment on top of live mode: Pushover at the simulator, the risk limits
    that let every request of the run trade on one market, and the configured credentials, if any."""
    env = {"PUSHOVER_API_URL": sim_url, "PUSHOVER_USER_KEY": PUSHOVER_USER, "PUSHOVER_API_TOKEN": PUSHOVER_TOKEN}
    if configured is not None:
        env.update(POLYMARKET_API_KEY=configured.api_key, POLYMARKET_SECRET=configured.api_secret,
                   POLYMARKET_PASSPHRASE=configured.api_passphrase)  # fmt: skip
    return {**env, **TUNING}


@dataclass(frozen=True)
class Traded:
    """The requests of one run: the ones that went through, and the one left on the execute queue."""

    done: list[TradeRequest]
    parked: TradeRequest


def trade(sim: SimServer, market: Market, flower: Flower, executor: Worker, canary: str) -> Traded:
    """Flower listening first, then the run's orders through the chain, then one more request
    approved while the executor is paused; returns once Flower lists every task settled."""
    wait_for(lambda: flower_sees_tasks(flower, canary), timeout=20, interval=0.5, what="Flower to list a task")
    sim.scenario.settings["clob_post_faults"] = list(POST_FAULTS)
    limit = best_ask(sim.scenario, market.yes_token_id) + Decimal("0.02")
    done = [buy_yes(market, "5", limit) for _ in range(FILLS + 1)]
    for request in done:
        submit(request)
    wait_for(lambda: settled(done), timeout=30, what="every trade recorded and alerted")

    paused = app.control.cancel_consumer("execute", destination=[executor.hostname], reply=True, timeout=5)
    assert paused, "the executor did not confirm it stopped consuming"
    parked = buy_yes(market, "5", limit)
    submit(parked)
    wait_for(lambda: queued("execute", parked), timeout=20, what="the approved request on the execute queue")
    wait_for(lambda: flower_caught_up(flower, len(done)), timeout=20, what="Flower to list every task settled")
    return Traded(done, parked)


def expected_in(sim: SimServer, traded: Traded, canary: str) -> dict[str, list[str]]:
    """What each source must contain after this run: the proof that each search looked at data."""
    orders = [entry["order_id"] for entry in sim.scenario.log("clob_order")]
    with session_scope() as session:
        refusal = session.scalar(select(LiveTradeRow.error_message).where(LiveTradeRow.status != "filled"))
        approved = session.scalar(select(func.count()).where(RiskDecisionRow.approved))
    assert len(orders) == FILLS and approved == len(traded.done) + 1, (orders, approved)
    assert refusal and "balance" in refusal, refusal
    ids = [r.request_id for r in [*traded.done, traded.parked]]
    trade_ids = [r.trade_id for r in traded.done]
    return {
        "front worker log": ids,  # the guardian logs every decision
        "execute worker log": [*(r.request_id for r in traded.done), refusal],  # Celery logs each result
        "persist worker log": trade_ids,  # in its alert lines
        "flower log": ["Visit me at"],
        "redis": [canary, traded.parked.request_id, "pm_arb.persist.record"],  # the last only in a decoded body
        "database": [*ids, *orders, refusal],
        "flower": [canary, *ids],
        "venue log": [*orders, "Order refused: not enough collateral"],
        "venue requests": ['"signature"', "/1/messages.json"],
    }


def live_run(credentials: str) -> Run:
    """One run in live mode, with the credentials `configured` in the environment or `derived`."""
    private_key, canary = new_key(), f"canary-{uuid.uuid4().hex}"
    with running_sim(seed=7, symbols=("BTC",)) as sim:
        received = record_requests(sim)
        configured = known_credentials(sim, private_key) if credentials == CONFIGURED else None
        with live_stores(sim.url, private_key, redis_db=SECRETS_REDIS_DB, **run_settings(sim.url, configured)) as env:
            market = cache_market(sim.scenario, find_strike_market(sim.scenario))
            workers = (
                Worker("front", "scan,risk", env), Worker("execute", "execute", env),
                Worker("persist", "persist,alert,ops", env),
            )  # fmt: skip
            flower_env = {**env, "FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN)}
            with running_flower(flower_env) as flower, running(*workers):
                traded = trade(sim, market, flower, workers[1], canary)
                creds = configured or known_credentials(sim, private_key)
                run = Run(private_key, creds, expected=expected_in(sim, traded, canary))
                run.sources["redis"] = redis_dump(SECRETS_REDIS_DB)
                run.sources["database"] = database_dump()
                run.sources["flower"] = flower_dump(flower)
                run.sources["venue log"] = json.dumps(sim.scenario.log())
                run.sources["venue requests"] = as_received(received, creds.api_key)
            # The logs once every process has stopped, so nothing is still buffered.
            run.sources.update({f"{w.name} worker log": w.log() for w in workers})
            run.sources["flower log"] = flower.log()
    auth_seen = {(r.headers.get("POLY_API_KEY"), r.headers.get("POLY_PASSPHRASE")) for r in received
                 if r.target == "/order"}  # fmt: skip
    assert auth_seen == {(creds.api_key, creds.api_passphrase)}, "the venue saw other credentials than searched for"
    return run


@pytest.fixture(scope="module", params=[CONFIGURED, DERIVED])
def run(request: pytest.FixtureRequest) -> Run:
    """One live run per way of getting the credentials; both tests read the same run."""
    return live_run(request.param)


# ---- the tests -------------------------------------------------------------------------------------


def test_the_search_finds_what_the_run_left_in_every_source(run: Run) -> None:
    assert set(run.expected) == set(run.sources)
    missing = [
        f"{value[:40]!r} not in {source}"
        for source, values in run.expected.items()
        for value in values
        if not found({"expected": value}, {source: run.sources[source]})
    ]
    assert missing == []
    planted = {**run.sources, "execute worker log": run.sources["execute worker log"] + run.private_key[2:].upper()}
    assert found(secrets_of(run.private_key, run.creds), planted) == ["private key without 0x in execute worker log"]


def test_no_secret_in_logs_redis_database_flower_or_what_the_venue_received(run: Run) -> None:
    assert found(secrets_of(run.private_key, run.creds), run.sources) == []
