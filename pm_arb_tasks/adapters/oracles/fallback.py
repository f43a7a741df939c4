"""The oracle fallback chain: providers in priority order, each with its own health.

Per poll, each symbol is priced by the first healthy provider that has it; symbols a provider
could not price fall through to the next one. Health rules (time passed in, so tests need no
sleeps):

- a failure (transport error, 5xx, undecodable or wrong-shaped body, or a reply with no usable
  price at all) counts against the provider; `failure_threshold` in a row mark it unhealthy
  for `cooldown`, after which it is tried again (one more failure re-opens the cool-down);
- HTTP 429 backs off exponentially (`backoff_base` * 2^(n-1), capped), and never less than the
  server's Retry-After;
- HTTP 403/451 (geo-block) mark it unhealthy at once for `blocked_cooldown`;
- any success resets it.

Health lives in a `HealthStore` (in-process for tests, Redis in the workers so every worker
process and `pm-arb status` see the same state).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pm_arb_tasks.adapters.http import UpstreamError
from pm_arb_tasks.adapters.oracles import OracleProvider
from pm_arb_tasks.adapters.parsing import to_datetime
from pm_arb_tasks.domain.models import Tick

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthPolicy:
    failure_threshold: int = 3
    cooldown: timedelta = timedelta(seconds=30)
    backoff_base: timedelta = timedelta(seconds=2)
    backoff_max: timedelta = timedelta(seconds=120)
    blocked_cooldown: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class ProviderHealth:
    failures: int = 0  # consecutive
    rate_limits: int = 0  # consecutive 429s, the backoff exponent
    unhealthy_until: datetime | None = None
    last_error: str = ""

    def available(self, now: datetime) -> bool:
        return self.unhealthy_until is None or now >= self.unhealthy_until

    @property
    def clean(self) -> bool:
        return self.failures == 0 and self.rate_limits == 0 and self.unhealthy_until is None

    def after_success(self) -> ProviderHealth:
        return ProviderHealth()

    def after_failure(self, error: UpstreamError, now: datetime, policy: HealthPolicy) -> ProviderHealth:
        failures = self.failures + 1
        text = str(error)[:300]
        if error.rate_limited:
            level = self.rate_limits + 1
            delay = min(policy.backoff_base * 2 ** (level - 1), policy.backoff_max)
            if error.retry_after is not None:
                delay = max(delay, timedelta(seconds=min(error.retry_after, 86_400)))
            return ProviderHealth(failures, level, now + delay, text)
        if error.blocked:
            return ProviderHealth(failures, 0, now + policy.blocked_cooldown, text)
        until = now + policy.cooldown if failures >= policy.failure_threshold else None
        return ProviderHealth(failures, 0, until, text)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["unhealthy_until"] = self.unhealthy_until.isoformat() if self.unhealthy_until else None
        return data

    @classmethod
    def from_json(cls, data: object) -> ProviderHealth:
        """Unreadable stored state means healthy: the next poll will find out again."""
        if not isinstance(data, dict):
            return cls()
        failures, rate_limits = data.get("failures"), data.get("rate_limits")
        return cls(
            failures=failures if isinstance(failures, int) else 0,
            rate_limits=rate_limits if isinstance(rate_limits, int) else 0,
            unhealthy_until=to_datetime(data.get("unhealthy_until")),
            last_error=str(data.get("last_error") or "")[:300],
        )


class HealthStore(Protocol):
    def load(self, names: Iterable[str]) -> dict[str, ProviderHealth]: ...

    def save(self, name: str, health: ProviderHealth) -> None: ...


@dataclass
class MemoryHealthStore:
    """In-process health, for tests and single-process tools."""

    states: dict[str, ProviderHealth] = field(default_factory=dict)

    def load(self, names: Iterable[str]) -> dict[str, ProviderHealth]:
        return {name: self.states.get(name, ProviderHealth()) for name in names}

    def save(self, name: str, health: ProviderHealth) -> None:
        self.states[name] = health


class OracleFallback:
    """Prices symbols from the first healthy provider that has them; never raises."""

    def __init__(
        self,
        providers: Sequence[OracleProvider],
        store: HealthStore | None = None,
        policy: HealthPolicy | None = None,
    ) -> None:
        self.providers = list(providers)
        self.store: HealthStore = store if store is not None else MemoryHealthStore()
        self.policy = policy or HealthPolicy()

    def fetch(self, symbols: Sequence[str], now: datetime) -> list[Tick]:
        health = self.store.load(p.name for p in self.providers)
        wanted = list(dict.fromkeys(symbols))
        ticks: list[Tick] = []
        for provider in self.providers:
            if not wanted:
                break
            state = health[provider.name]
            if not state.available(now):
                continue
            try:
                got = provider.fetch(wanted, now)
                if not got:
                    raise UpstreamError(f"{provider.name}: no usable price for {','.join(wanted)}")
            except UpstreamError as exc:
                self._failed(provider.name, state, exc, now)
                continue
            except Exception:  # a provider bug must not stop the others (invariant 6)
                log.exception("oracle %s: unexpected error, treated as a failure", provider.name)
                self._failed(provider.name, state, UpstreamError("unexpected error"), now)
                continue
            if not state.clean:
                log.info("oracle %s: healthy again", provider.name)
                self.store.save(provider.name, state.after_success())
            for tick in got:
                if tick.symbol in wanted:  # first price per symbol wins; duplicates ignored
                    ticks.append(tick)
                    wanted.remove(tick.symbol)
        if wanted:
            log.warning("oracle: no provider priced %s this poll", ",".join(wanted))
        return ticks

    def _failed(self, name: str, state: ProviderHealth, error: UpstreamError, now: datetime) -> None:
        new = state.after_failure(error, now, self.policy)
        self.store.save(name, new)
        until = f", unhealthy until {new.unhealthy_until.isoformat()}" if new.unhealthy_until else ""
        log.warning("oracle %s failed (%d in a row): %s%s", name, new.failures, error, until)
