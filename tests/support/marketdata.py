"""Market-data test support: the simulator, our own Redis DBs (4-6), a fresh schema, env restore.

The Redis DB numbers of the market-data area are set here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests

from tests.support.env import flush_redis, point_process_at

REDIS_DB = {"oracles": 4, "gamma": 5, "books": 6}
UPSTREAM_SETTINGS = ("GAMMA_API_URL", "CLOB_API_URL", "BINANCE_API_URL", "COINBASE_API_URL", "COINGECKO_API_URL")


@contextmanager
def marketdata_env(area: str, sim_url: str, database_url: str = "sqlite:///:memory:", **extra: str) -> Iterator[None]:
    """Point settings, Redis and the database at this area's stores and every upstream at the
    simulator; restore the previous environment afterwards."""
    env = {name: sim_url for name in UPSTREAM_SETTINGS}
    env.update(extra)
    saved = {name: os.environ.get(name) for name in (*env, "REDIS_URL", "DATABASE_URL")}
    flush_redis(REDIS_DB[area])
    point_process_at(redis_db=REDIS_DB[area], database_url=database_url, **env)
    try:
        yield
    finally:
        flush_redis(REDIS_DB[area])
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        from pm_arb_tasks.settings import get_settings

        get_settings.cache_clear()


def control(sim_url: str, path: str, method: str = "POST", **body: Any) -> dict[str, Any]:
    """Call a `/sim/*` control endpoint over HTTP, as tests and demos do."""
    response = requests.request(method, f"{sim_url}/sim/{path}", json=body or None, timeout=5)
    response.raise_for_status()
    return response.json()


def sim_log(sim_url: str, kind: str) -> list[dict[str, Any]]:
    """The simulator's `/sim/log` entries of one kind (orders, posts, alerts...), read over HTTP:
    what reached the venue, by the venue's own count."""
    response = requests.get(f"{sim_url}/sim/log", params={"kind": kind}, timeout=5)
    response.raise_for_status()
    return response.json()["entries"]


def fault(sim_url: str, service: str, **spec: Any) -> None:
    control(sim_url, "fault", service=service, **spec)


def clear_faults(sim_url: str) -> None:
    control(sim_url, "fault", method="DELETE")
