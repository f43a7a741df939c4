"""The beat scheduler: celery-redbeat's Redis lock, made to ride out a Redis restart.

RedBeat extends its lock on every tick and lets a Redis error escape, which ends the beat process
(and, under `pm-arb up`, the whole stack) the moment Redis restarts. Here a Redis error skips the
tick and is retried; a lock lost with the restart is taken again if free, and while another beat
holds it this one schedules nothing, so the schedule is still never doubled.
"""

from __future__ import annotations

import logging
from typing import Any

from redbeat import RedBeatScheduler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


class ResilientRedBeatScheduler(RedBeatScheduler):
    def tick(self, *args: Any, **kwargs: Any) -> float:
        try:
            return super().tick(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("beat: Redis unavailable (%s); retrying in %.0fs", exc, RETRY_SECONDS)
            return RETRY_SECONDS
        except LockError:
            return self._retake_lock()

    def _retake_lock(self) -> float:
        try:
            if self.lock is not None and self.lock.acquire(blocking=False):
                log.warning("beat: lock lost (Redis restarted?) and taken again")
                return 0.0
        except (RedisConnectionError, RedisTimeoutError, LockError) as exc:
            log.warning("beat: could not take the lock again (%s)", exc)
        log.warning("beat: another beat holds the lock; this one schedules nothing")
        return float(self.max_interval)
