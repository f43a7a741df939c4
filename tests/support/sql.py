"""What the product's engines send, for tests that count round trips or statement compiles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def statements_sent() -> Iterator[list[tuple[str, bool]]]:
    """Every statement the main and the autocommit engine send, with whether SQLAlchemy compiled it anew."""
    from sqlalchemy import event
    from sqlalchemy.engine.interfaces import CacheStats

    from pm_arb_tasks.db.session import get_autocommit_engine, get_engine

    sent: list[tuple[str, bool]] = []

    def after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        # No context: a statement sent on the driver's cursor (db.driver), never compiled.
        compiled = context is not None and context.cache_hit in (CacheStats.CACHE_MISS, CacheStats.NO_CACHE_KEY)
        sent.append((statement, compiled))

    # SQLite's autocommit engine is the main one with an option set, and shares its listeners.
    engines = [get_engine()]
    if get_autocommit_engine().pool is not get_engine().pool:
        engines.append(get_autocommit_engine())
    for engine in engines:
        event.listen(engine, "after_cursor_execute", after)
    try:
        yield sent
    finally:
        for engine in engines:
            event.remove(engine, "after_cursor_execute", after)
