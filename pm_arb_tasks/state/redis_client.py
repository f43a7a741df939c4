"""One Redis connection pool per process and URL (the broker's Redis, a separate pool)."""

from __future__ import annotations

from functools import lru_cache

import redis

from pm_arb_tasks.settings import get_settings


@lru_cache(maxsize=4)
def redis_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
    )


def get_redis() -> redis.Redis:
    return redis_for(get_settings().redis_url)
