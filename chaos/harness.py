"""The stores and the stack a chaos run works on, and the driver's own view of them.

- `ChaosRedis`: a `redis-server` this run starts as its child (append-only, noeviction, its own
  directory), so the Redis-restart scenario can shut it down and bring it back with its data.
  The shared Redis on :6379 is never touched.
- PostgreSQL: the shared server, in a fresh `pmarb_chaos_*` schema. The workers reach it through a
  `TcpProxy` the driver can cut (an outage for them only); the driver itself connects directly.
- The simulator runs in the driver process; every upstream URL of the stack points at it.
- `Rig`: all of the above plus the Procfile stack (tests/support/stack.py), started together and
  torn down together; the driver process is pointed at the same stores while it is open.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from pm_arb_tasks.sim import running_sim
from pm_arb_tasks.sim.scenario import Scenario
from pm_arb_tasks.sim.server import SimServer
from tests.support.env import fresh_schema, point_process_at
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy

DEFAULT_REDIS_PORT = 6391
REDIS_DB = 0
AREA = "chaos"  # schema prefix pmarb_chaos_
UPSTREAMS = (
    "GAMMA_API_URL", "CLOB_API_URL", "BINANCE_API_URL", "COINBASE_API_URL", "COINGECKO_API_URL", "PUSHOVER_API_URL",
)
# Made-up Pushover keys (30 characters, like real ones): alerts are delivered to the simulator,
# whose /sim/log is then the operator's phone.
PUSHOVER_TOKEN = "achaostoken0123456789abcdefghi"
PUSHOVER_USER = "uchaosuser0123456789abcdefghij"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChaosRedis:
    """`redis-server` on 127.0.0.1:`port` as this process's child; restartable with its data."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port, self.data_dir = port, data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = REDIS_DB) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = REDIS_DB) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, decode_responses=True, socket_timeout=5)

    def answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 15) -> float:
        """Start the server; returns the wall-clock time (time.time()) it first answered PING."""
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        if not port_free(self.port):
            raise SystemExit(f"port {self.port} is taken; pass another --redis-port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--appendfsync", "everysec", "--save", "", "--maxmemory-policy", "noeviction",
             "--dir", str(self.data_dir), "--logfile", str(self.data_dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None:
                raise SystemExit(f"redis-server exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)
        return time.time()

    def shutdown(self) -> None:
        """SHUTDOWN: Redis fsyncs its append-only file and exits, as on a clean service restart."""
        with contextlib.suppress(redis.ConnectionError):  # the server closes our connection on its way out
            self.client().shutdown()
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.shutdown()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.data_dir / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


def stack_environment(
    *, redis_url: str, database_url: str, sim_url: str, pushover: bool = True, **overrides: str
) -> dict[str, str]:
    """Every setting of DESIGN.md §4 spelled out, so no developer `.env` leaks into a run."""
    env = {
        "PAPER_TRADING": "true",
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        **dict.fromkeys(UPSTREAMS, sim_url),
        "PUSHOVER_USER_KEY": PUSHOVER_USER if pushover else "",
        "PUSHOVER_API_TOKEN": PUSHOVER_TOKEN if pushover else "",
        "POLYMARKET_PRIVATE_KEY": "",
        "POLYMARKET_API_KEY": "",
        "POLYMARKET_SECRET": "",
        "POLYMARKET_PASSPHRASE": "",
        "POLYMARKET_FUNDER": "",
        "SYMBOLS": "BTC,ETH,SOL,XRP",
        # Room for thousands of injected $3 requests (one market each); per-trade cap as default.
        "INITIAL_BANKROLL": "1000000",
        "FLOWER_BASIC_AUTH": f"chaos:{secrets.token_hex(8)}",
        "FLOWER_PORT": str(free_port()),
    }
    env.update(overrides)
    return env


@dataclass
class Rig:
    """One chaos environment: private Redis, fresh schema, simulator, PG proxy, the Procfile stack."""

    redis: ChaosRedis
    database_url: str  # direct, for the driver's own reads
    sim: SimServer
    proxy: TcpProxy | None  # between the workers and PostgreSQL, when the run may cut it
    stack: Stack
    run_dir: Path


def through(proxy: TcpProxy | None, database_url: str) -> str:
    return database_url if proxy is None else database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")


@contextmanager
def driver_pointed_at(env: dict[str, str]) -> Iterator[None]:
    """Point this process (settings, engines, Redis pool, Celery app) at `env`; restore afterwards."""
    saved = dict(os.environ)
    point_process_at(redis_db=REDIS_DB, database_url=env["DATABASE_URL"], **env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        point_process_at(
            redis_db=REDIS_DB, database_url=saved.get("DATABASE_URL", "sqlite:///pm_arb.db"),
            REDIS_URL=saved.get("REDIS_URL", "redis://localhost:6379/0"),
        )
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def rig(
    *,
    redis_port: int = DEFAULT_REDIS_PORT,
    processes: tuple[str, ...] = (),
    proxy_pg: bool = True,
    pushover: bool = True,
    seed: int = 7,
    jumps: tuple[tuple[float, str, float], ...] = (),
    run_dir: Path | None = None,
    **overrides: str,
) -> Iterator[Rig]:
    """Start everything (the Procfile's `processes`, default all), yield once every worker answers,
    tear everything down in reverse order."""
    with ExitStack() as cleanup:
        run_dir = run_dir or Path(tempfile.mkdtemp(prefix="pmarb-chaos-"))
        server = ChaosRedis(redis_port, run_dir / "redis")
        server.start()
        cleanup.callback(server.stop)
        url = cleanup.enter_context(fresh_schema(AREA))
        sim = cleanup.enter_context(running_sim(scenario=Scenario(seed, jumps=jumps)))
        proxy = TcpProxy(5432).start() if proxy_pg else None
        if proxy is not None:
            cleanup.callback(proxy.cut)
        env = stack_environment(
            redis_url=server.url(), database_url=url, sim_url=sim.url, pushover=pushover, **overrides
        )
        cleanup.enter_context(driver_pointed_at(env))
        stack = Stack({**os.environ, **env, "DATABASE_URL": through(proxy, url)}, run_dir / "logs")
        cleanup.callback(stack.stop)
        stack.start(*processes)
        stack.wait_ready()
        yield Rig(server, url, sim, proxy, stack, run_dir)
