"""The benchmark's own stores: a private Redis server, a throwaway PostgreSQL schema, the env.

The bench never touches the shared Redis on :6379 (its 16 databases belong to the test suite):
it talks to its own `redis-server` (default port 6390, no persistence), starting it when nothing
answers there and stopping it at the end only if it started it. Each part of a run has its own
database number on that server (`RedisDbs`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import redis

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("PMARB_BENCH_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_URL = os.environ.get("PMARB_BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
SCHEMA_PREFIX = "pmarb_bench_"


@dataclass(frozen=True)
class RedisDbs:
    """Database numbers on the bench Redis server, one per part of the run."""

    product: int = 1  # the product stack's broker, caches and locks
    floor: int = 2  # the bare Celery chain's broker
    relay: int = 3  # the bare LPUSH/BRPOP relay
    scanner: int = 4  # bench_scan's Redis path (it flushes its database)
    probe: int = 5  # beat and flower, started only to read their memory
    live: int = 6  # the live product stack's broker, caches and locks (its queues must not meet the paper's)

    def all(self) -> tuple[int, ...]:
        """Every database of the run, to flush before and after it."""
        return (self.product, self.floor, self.relay, self.scanner, self.probe, self.live)


class BenchRedis:
    """A `redis-server` on 127.0.0.1:`port`; started here only when nothing answers there."""

    def __init__(self, port: int):
        self.port = port
        self.started = False
        self.pidfile = Path(f"/tmp/pmarb-bench-redis-{port}.pid")

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        # redis-py's default 5 s socket timeout would cut the drivers' longer blocking pops short.
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, decode_responses=True, socket_timeout=60)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def ensure(self) -> BenchRedis:
        if self.answers():
            return self
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        subprocess.run(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--pidfile", str(self.pidfile), "--dir", "/tmp"],
            check=True, stdout=subprocess.DEVNULL,
        )
        self.started = True
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not answer on port {self.port}")
            time.sleep(0.05)
        return self

    def version(self) -> str:
        return str(self.client().info("server").get("redis_version", "?"))

    def stop_if_started(self) -> None:
        """Shut down the server this run started (never one that was already there)."""
        if not self.started:
            return
        with contextlib.suppress(redis.ConnectionError):  # shutting down closes our connection
            self.client().shutdown(nosave=True)
        self.started = False


def free_port() -> int:
    """An unused TCP port (the smoke test's private Redis, so it never meets a full run's)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin(sql: str) -> None:
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def pg_version() -> str:
    conn = psycopg2.connect(PG_ADMIN_DSN)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            return str(cur.fetchone()[0]).split()[0]
    finally:
        conn.close()


@contextmanager
def bench_schema() -> Iterator[tuple[str, str]]:
    """A fresh `pmarb_bench_<random>` schema; yields (schema, SQLAlchemy URL); dropped afterwards.

    Migrating it is the caller's job, once this process's environment points at it.
    """
    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema, f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# Limits high enough that the guardian approves every benchmark request, so every tick ends as an
# order; the per-market cooldown short enough for the universe's opportunity slots to come back
# (`bench.universe.SLOTS` ticks later) yet above zero, so the scan and the guardian still check
# it as they do in production; everything else keeps its default.
BENCH_SETTINGS = {
    "PAPER_TRADING": "true",
    "SYMBOLS": "BTC",
    "INITIAL_BANKROLL": "1000000",
    "MAX_TRADE_SIZE": "20",
    "MARKET_COOLDOWN_SECONDS": "0.2",
    "PUSHOVER_USER_KEY": "",
    "PUSHOVER_API_TOKEN": "",
    "POLYMARKET_PRIVATE_KEY": "",
    "POLYMARKET_API_KEY": "",
    "POLYMARKET_SECRET": "",
    "POLYMARKET_PASSPHRASE": "",
    "POLYMARKET_FUNDER": "",
}
UPSTREAMS = (
    "GAMMA_API_URL", "CLOB_API_URL", "BINANCE_API_URL", "COINBASE_API_URL", "COINGECKO_API_URL", "PUSHOVER_API_URL",
)
FLOOR_BROKER_ENV = "PMARB_BENCH_FLOOR_URL"
FLOOR_IO_DSN_ENV = "PMARB_BENCH_FLOOR_IO_DSN"  # libpq DSN of the floor's required-I/O series (bench.floor_app)


def bench_environment(
    *, redis_url: str, floor_url: str, database_url: str, sim_url: str, floor_io_schema: str
) -> dict[str, str]:
    """The environment of every process of the run (this one included): stores, simulator, limits."""
    env = dict(BENCH_SETTINGS)
    env.update({name: sim_url for name in UPSTREAMS})
    env.update(
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "FLOWER_BASIC_AUTH": f"bench:{secrets.token_hex(8)}",
            FLOOR_BROKER_ENV: floor_url,
            FLOOR_IO_DSN_ENV: f"{PG_ADMIN_DSN} options=-csearch_path={floor_io_schema}",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        }
    )
    return env


# The simulated venue's starting pUSD balance for a new account (its allowance already defaults to
# 10**9): every live order of a full run (some 520 at MAX_TRADE_SIZE) and then some, so collateral
# never refuses one.
SIM_COLLATERAL = 10**9


def live_environment(env: dict[str, str], *, redis_url: str, database_url: str) -> dict[str, str]:
    """The live product stack's environment: `env` on stores of its own, trading live on the simulator.

    A throwaway key signs the orders; the API credentials are left empty so the executor derives
    them from the key at start-up, as a fresh deployment does (and proves them against the CLOB).
    Every upstream, the CLOB included, already points at the simulator (`bench_environment`).
    """
    from eth_account import Account

    return {
        **env,
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "PAPER_TRADING": "false",
        "POLYMARKET_PRIVATE_KEY": "0x" + bytes(Account.create().key).hex(),
    }


def point_here(env: dict[str, str]) -> None:
    """Point this process at the bench stores, before any product module reads its settings."""
    os.environ.update(env)
    from pm_arb_tasks.db.session import reset_engines
    from pm_arb_tasks.settings import get_settings
    from pm_arb_tasks.state.redis_client import redis_for

    get_settings.cache_clear()
    redis_for.cache_clear()
    reset_engines()


@contextmanager
def pointed_at(env: dict[str, str]) -> Iterator[None]:
    """This process's product modules on `env`'s stores for the block, then back where they were.

    The driver seeds markets and reads ticks through the product's own modules, which follow the
    process environment; a second stack's series (the live one) points them at its stores for its
    own blocks. Nothing is reset when the process already points there.
    """
    if all(os.environ.get(key) == value for key, value in env.items()):
        yield
        return
    before = {key: os.environ.get(key, "") for key in env}
    point_here(env)
    try:
        yield
    finally:
        point_here(before)
