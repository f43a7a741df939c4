"""Logging a caught failure at the right weight.

An outage of a store or service we depend on (database, Redis, network) is expected, retried and
alerted on elsewhere: one error line naming it. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from pm_arb_tasks.security import redact

OUTAGES = (SQLAlchemyError, RedisError, OSError)


def is_outage(exc: BaseException | None) -> bool:
    return isinstance(exc, OUTAGES)


def log_failure(logger: logging.Logger, message: str, *args: object) -> None:
    """Call inside an `except` block."""
    exc = sys.exc_info()[1]
    if is_outage(exc):
        first_line = (str(exc).splitlines() or [""])[0][:200]
        logger.error(f"{message} (%s: %s)", *args, type(exc).__name__, redact(first_line))
    else:
        logger.exception(message, *args)


@contextmanager
def outage_skips(logger: logging.Logger, what: str) -> Iterator[None]:
    """Periodic upkeep (beat runs it again in seconds): a store outage skips this run with one
    line instead of a failed task and a traceback; anything else still raises."""
    try:
        yield
    except OUTAGES:
        log_failure(logger, "%s skipped this run", what)
