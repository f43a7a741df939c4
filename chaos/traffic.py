"""Opportunities at a steady rate: each one a market with a fresh book (stored as market data would
store it) and a trade request on the scan queue (`pm_arb.scan.submit`), with the production
deadline (TRADE_TTL_SECONDS after its "tick"). One market per request, so the guardian's
per-market cooldown never hides a lost or duplicated order behind a rejection.

A send that fails (the broker is down) is counted and dropped: that opportunity never entered
the system, exactly as an oracle tick taken during a broker outage would not.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from pm_arb_tasks.services.dispatch import submit
from pm_arb_tasks.settings import get_settings
from tests.support.trading import make_request, seed_market

log = logging.getLogger(__name__)


@dataclass
class Sent:
    request_id: str
    deadline: datetime
    at: float  # time.time()


@dataclass
class Injector:
    """Sends `rate` opportunities per second from a thread until `stop()` (or `limit` sent)."""

    rate: float
    limit: int | None = None
    sent: list[Sent] = field(default_factory=list)
    failed: int = 0
    late: int = 0  # ticks the thread could not keep up with (it never bursts to catch up)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Injector:
        self._thread = threading.Thread(target=self._run, name="chaos-injector", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Injector:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self

    def deadlines(self) -> dict[str, datetime]:
        return {s.request_id: s.deadline for s in self.sent}

    def _run(self) -> None:
        ttl = get_settings().trade_ttl_seconds
        prefix = uuid.uuid4().hex[:8]
        period = 1.0 / self.rate
        next_at = time.monotonic()
        n = 0
        while not self._stop.is_set() and (self.limit is None or n < self.limit):
            n += 1
            try:
                request = make_request(seed_market(f"0xchaos{prefix}{n}"), ttl=ttl)
                submit(request)
                self.sent.append(Sent(request.request_id, request.deadline, time.time()))
            except Exception as exc:  # the broker or the cache is down: this opportunity never entered
                self.failed += 1
                log.debug("opportunity %d not sent: %s", n, exc)
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                self.late += 1
                next_at = time.monotonic()
            elif self._stop.wait(delay):
                break
