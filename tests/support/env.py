"""Test isolation: a Redis DB number and a fresh PostgreSQL schema per area and run.

Every suite run creates its own schema (`pmarb_<area>_<random>`) and flushes only its own
Redis database, so two runs in a row, or runs beside other work, never see each other's state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import redis

from tests.support.waiting import wait_for

PG_ADMIN_DSN = os.environ.get("PMARB_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_URL = os.environ.get("PMARB_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_BASE = os.environ.get("PMARB_TEST_REDIS", "redis://127.0.0.1:6379")


def pg_url(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def redis_url(db: int) -> str:
    return f"{REDIS_BASE}/{db}"


def _admin(sql: str) -> None:
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@contextmanager
def fresh_schema(area: str) -> Iterator[str]:
    """A migrated, empty schema; dropped afterwards. Yields its SQLAlchemy URL."""
    from pm_arb_tasks.db.migrate import upgrade

    schema = f"pmarb_{area}_{uuid.uuid4().hex[:8]}"
    _admin(f'CREATE SCHEMA "{schema}"')
    try:
        url = pg_url(schema)
        upgrade(url)
        yield url
    finally:
        _admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def fresh_database(kind: str, area: str, tmp_dir: str) -> Iterator[str]:
    """A migrated, empty database of either kind the product supports: "postgres" or "sqlite"."""
    if kind == "postgres":
        with fresh_schema(area) as url:
            yield url
        return
    from pm_arb_tasks.db.migrate import upgrade

    url = f"sqlite:///{tmp_dir}/{area}-{uuid.uuid4().hex[:8]}.db"
    upgrade(url)
    yield url


@contextmanager
def database_only(area: str) -> Iterator[str]:
    """This process pointed at a fresh PostgreSQL schema, for a module that uses nothing else (the
    settings still name a Redis database, DB 0, which nothing touches)."""
    with fresh_schema(area) as url:
        point_process_at(redis_db=0, database_url=url)
        yield url


def flush_redis(db: int) -> None:
    redis.Redis.from_url(redis_url(db)).flushdb()


def point_process_at(*, redis_db: int, database_url: str, **extra: str) -> dict[str, str]:
    """Point this process (settings, engines, Redis pools, the Celery app) at the given stores.

    Returns the environment to hand to worker subprocesses so they use the same stores.
    """
    env = {"REDIS_URL": redis_url(redis_db), "DATABASE_URL": database_url, **extra}
    os.environ.update(env)
    reset_process_caches()
    return {**os.environ, **env}


def reset_process_caches() -> None:
    """Make settings, engines, Redis pools and the Celery app follow the current environment, and
    forget the prices the oracle poll saw in the previous stores."""
    from pm_arb_tasks.celery_app import app
    from pm_arb_tasks.db.session import reset_engines
    from pm_arb_tasks.services.execution import current_venue
    from pm_arb_tasks.services.marketdata import LAST_PRICES
    from pm_arb_tasks.settings import get_settings
    from pm_arb_tasks.state.redis_client import redis_for

    get_settings.cache_clear()
    reset_engines()
    redis_for.cache_clear()
    current_venue.cache_clear()
    LAST_PRICES.clear()
    url = get_settings().redis_url
    app.conf.update(broker_url=url, redbeat_redis_url=url)
    app._after_fork()  # drops the connection and producer pools bound to the previous broker URL


def terminate_backend(pid: int) -> None:
    """Drop the connection server-side, as a restart or an idle timeout would."""
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))

            def gone() -> bool:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
                return cur.fetchone()[0] == 0

            wait_for(gone, timeout=10, what="the backend to exit")
    finally:
        admin.close()
