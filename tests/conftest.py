"""Suite-wide safety: whatever a developer's `.env` says, tests run in paper mode, without
secrets, and with every upstream URL pointing at a closed local port unless a test starts the
simulator. Environment variables outrank `.env` in pydantic-settings.

Parallel runs (`make test` runs two pytest-xdist workers): the first worker uses the shared Redis
on :6379, every other one a `redis-server` of its own, so the per-area database numbers of
tests/support/env.py never meet; PostgreSQL schemas are already fresh per run. Each test file
stays on one worker (module fixtures start worker processes once), and the files that load the
machine most (whole stacks, benchmarks, crash loops) share one worker so they never overlap."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SAFE_ENV = {
    "PAPER_TRADING": "true",
    "REDIS_URL": "redis://127.0.0.1:6379/1",
    "DATABASE_URL": "sqlite:///:memory:",
    "GAMMA_API_URL": "http://127.0.0.1:9",
    "CLOB_API_URL": "http://127.0.0.1:9",
    "BINANCE_API_URL": "http://127.0.0.1:9",
    "COINBASE_API_URL": "http://127.0.0.1:9",
    "COINGECKO_API_URL": "http://127.0.0.1:9",
    "PUSHOVER_API_URL": "http://127.0.0.1:9",
    "PUSHOVER_USER_KEY": "",
    "PUSHOVER_API_TOKEN": "",
    "POLYMARKET_PRIVATE_KEY": "",
    "POLYMARKET_API_KEY": "",
    "POLYMARKET_SECRET": "",
    "POLYMARKET_PASSPHRASE": "",
    "POLYMARKET_FUNDER": "",
    "FLOWER_BASIC_AUTH": "",
    "SYMBOLS": "BTC,ETH,SOL,XRP",
}
os.environ.update(SAFE_ENV)

# Whole Procfile stacks or long kill loops: run one after another on one worker (see above).
HEAVY = frozenset({
    "tests/integration/test_bench_smoke.py", "tests/integration/test_chaos_quick.py",
    "tests/integration/test_executor_crash.py", "tests/integration/test_stack_up.py",
    "tests/integration/test_malformed_payloads.py", "tests/integration/test_scripted_jump.py",
})  # fmt: skip
_PRIVATE_REDIS: list[subprocess.Popen[bytes]] = []


def _start_private_redis() -> str:
    """A throw-away redis-server on a free port (no persistence); returns its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = shutil.which("redis-server")
    if server is None:
        raise pytest.UsageError("parallel tests need redis-server on PATH")
    data = tempfile.mkdtemp(prefix="pmarb-test-redis-")
    _PRIVATE_REDIS.append(subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--maxmemory-policy", "noeviction", "--dir", data, "--logfile", str(Path(data) / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    ))  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    raise pytest.UsageError(f"private redis-server on port {port} did not answer")


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module is imported (tests/support/env.py reads PMARB_TEST_REDIS on import)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and worker != "gw0":
        base = _start_private_redis()
        os.environ["PMARB_TEST_REDIS"] = base
        os.environ["REDIS_URL"] = f"{base}/1"


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in _PRIVATE_REDIS:
        server.terminate()
        server.wait(timeout=10)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """pytest-xdist's per-file scheduling, with the HEAVY files as one unit (xdist's own
    `xdist_group` marks do not reach the scheduler under pytest 9.2)."""
    from xdist.scheduler import LoadFileScheduling

    class HeavyTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return "heavy" if path in HEAVY else path

    return HeavyTogether(config, log)


@pytest.fixture(autouse=True, scope="module")
def _environment_per_module() -> Iterator[None]:
    """Whatever a test module points the process at (env, stores, broker), the next one starts clean."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    from tests.support.env import reset_process_caches

    reset_process_caches()
