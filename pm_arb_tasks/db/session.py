"""Engines and sessions, one engine per process and URL.

PostgreSQL in production, SQLite as the zero-setup default. A test run isolates itself in its
own schema by putting `?options=-csearch_path%3D<schema>` in DATABASE_URL.

Two ways in: `session_scope()`, a transaction for anything that reads then writes or needs a
lock; and `autocommit()`, a connection on which each statement is its own transaction, for the
single-statement steps on the order path (the executor's claim and records), which would
otherwise pay BEGIN and COMMIT as two more round trips around the one that matters; the risk
review and the scan's opportunity log send their own BEGIN and COMMIT inside their statements on
such a connection (risk/book.py, db/opportunity_log.py), on PostgreSQL on the driver's cursor
(db/driver.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from pm_arb_tasks.settings import get_settings

PING_AFTER_IDLE_SECONDS = 1.0  # a pooled connection unused for longer is pinged at checkout
_ENGINES: dict[str, Engine] = {}
_AUTOCOMMIT: dict[str, Engine] = {}
_FACTORIES: dict[str, sessionmaker[Session]] = {}
# Both dialects the product runs on have INSERT ... ON CONFLICT and RETURNING (SQLite since 3.35).
_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def engine_for(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES[url] = _create_engine(url)
    return _ENGINES[url]


def _create_engine(url: str, **options: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=5, max_overflow=5, pool_recycle=300, **options)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection at checkout only if it sat in the pool for PING_AFTER_IDLE_SECONDS.

    Why not `pool_pre_ping`: it pings on every checkout, a round trip on every review and every
    order (~0.2-0.3 ms each on the order path). A connection that the server dropped (restart,
    failover, idle timeout) has almost always been idle for a while, and is replaced at checkout
    as before (SQLAlchemy retries the checkout on `DisconnectionError`). One that was dropped
    within the last second fails its first statement instead: the review rejects, the executor
    hands the request to the retrying persist stage; nothing is approved or placed twice.
    """

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("connection dropped while idle in the pool") from exc


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


def autocommit_engine_for(url: str) -> Engine:
    """The engine whose connections commit every statement by themselves.

    PostgreSQL: a pool of its own, autocommit from connect on. Switching a pooled connection to
    autocommit and back costs a `SET default_transaction_isolation` round trip per use, more
    than it saves. SQLite: the main pool with the option set per use (a local call, and an
    in-memory database exists only on its own connection).
    """
    if url not in _AUTOCOMMIT:
        if url.startswith("sqlite"):
            _AUTOCOMMIT[url] = engine_for(url).execution_options(isolation_level="AUTOCOMMIT")
        else:
            _AUTOCOMMIT[url] = _create_engine(url, isolation_level="AUTOCOMMIT")
    return _AUTOCOMMIT[url]


def get_autocommit_engine() -> Engine:
    return autocommit_engine_for(get_settings().database_url)


def dialect_insert(dialect_name: str) -> Callable[..., Any]:
    """The dialect's own `insert`, which has `on_conflict_do_*` (the generic one has not)."""
    return _INSERTS[dialect_name]


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    url = get_settings().database_url
    if url not in _FACTORIES:
        _FACTORIES[url] = sessionmaker(bind=engine_for(url), expire_on_commit=False)
    session = _FACTORIES[url]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def autocommit(held: Connection | None = None) -> Iterator[Connection]:
    """A connection on which every statement commits as it completes (see the module docstring).

    Only for steps that are one statement each, or several that need not be atomic together.
    `held`: such a connection the caller already holds, so that its steps share one checkout
    instead of taking one each.
    """
    if held is not None:
        yield held
        return
    with get_autocommit_engine().connect() as conn:
        yield conn


def reset_engines() -> None:
    """Forget pooled connections: after a fork (the child must not share the parent's sockets)
    or when a test points the process at another database."""
    own_pools = [e for url, e in _AUTOCOMMIT.items() if not url.startswith("sqlite")]  # sqlite's is the main pool
    for engine in (*_ENGINES.values(), *own_pools):
        engine.dispose(close=False)
    _ENGINES.clear()
    _AUTOCOMMIT.clear()
    _FACTORIES.clear()
