"""Suite-wide safety: whatever a developer's `.env` says, tests run in paper mode, without
secrets, and with every upstream URL pointing at a closed local port unless a test starts the
simulator. Environment variables outrank `.env` in pydantic-settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(autouse=True, scope="module")
def _environment_per_module() -> Iterator[None]:
    """Whatever a test module points the process at (env, stores, broker), the next one starts clean."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    from tests.support.env import reset_process_caches

    reset_process_caches()
