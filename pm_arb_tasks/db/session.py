"""Engines and sessions, one engine per process and URL.

PostgreSQL in production, SQLite as the zero-setup default. A test run isolates itself in its
own schema by putting `?options=-csearch_path%3D<schema>` in DATABASE_URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from pm_arb_tasks.settings import get_settings

_ENGINES: dict[str, Engine] = {}
_FACTORIES: dict[str, sessionmaker[Session]] = {}


def engine_for(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES[url] = _create_engine(url)
    return _ENGINES[url]


def _create_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5, pool_recycle=300)


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


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


def reset_engines() -> None:
    """Forget pooled connections: after a fork (the child must not share the parent's sockets)
    or when a test points the process at another database."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _ENGINES.clear()
    _FACTORIES.clear()
