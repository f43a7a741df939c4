"""The scan task: decode, read the clock, call the scan service."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from pm_arb_tasks.celery_app import app
from pm_arb_tasks.domain.models import Tick
from pm_arb_tasks.services import scanning

log = logging.getLogger(__name__)


def _parse_time(value: str | None) -> datetime | None:
    """The poll time the oracle task sent; unreadable means unknown, never a crash."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        log.warning("scan: ignoring unreadable tick_at %r", value)
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_ticks(values: object) -> list[Tick]:
    """The ticks the poll sent; an unreadable one is left out (the scan then prices from the
    stored tick, as it would without any)."""
    if not isinstance(values, list):
        return []
    ticks = []
    for value in values:
        try:
            ticks.append(Tick.model_validate(value))
        except ValidationError:
            log.warning("scan: ignoring unreadable tick %.200r", value)
    return ticks


@app.task(name="pm_arb.scan.symbols", soft_time_limit=10, time_limit=12)
def scan_symbols(symbols: list[str], tick_at: str | None = None, ticks: object = None) -> dict[str, object]:
    wanted = [s.strip().upper() for s in symbols if isinstance(s, str)] if isinstance(symbols, list) else []
    return scanning.scan(
        wanted, datetime.now(UTC), tick_at=_parse_time(tick_at), ticks=_parse_ticks(ticks)
    ).as_dict()
