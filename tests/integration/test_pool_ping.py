"""The pool pings a connection at checkout only after it sat idle (db/session.py), on real PostgreSQL:
a connection the server dropped while idle is replaced before anyone uses it; one in steady use
costs no ping; one dropped between two quick uses fails once, and the pool recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from pm_arb_tasks.db import session as db_session
from pm_arb_tasks.db.session import autocommit, get_autocommit_engine
from tests.support.env import PG_ADMIN_DSN, fresh_schema, point_process_at
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
REDIS_DB = 0  # named because the settings need one; nothing here touches Redis


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[None]:
    with fresh_schema("ping") as url:
        point_process_at(redis_db=REDIS_DB, database_url=url)
        yield


@pytest.fixture()
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pings of the autocommit engine's dialect."""
    dialect = get_autocommit_engine().dialect
    real, counted = dialect.do_ping, []

    def counting(dbapi_conn):  # type: ignore[no-untyped-def]
        counted.append(1)
        return real(dbapi_conn)

    monkeypatch.setattr(dialect, "do_ping", counting)
    return counted


def backend_pid() -> int:
    with autocommit() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(pid: int) -> None:
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


def test_a_connection_in_steady_use_is_not_pinged(pings: list[int]) -> None:
    backend_pid()
    pings.clear()
    for _ in range(5):
        backend_pid()
    assert pings == []


def test_a_connection_dropped_while_idle_is_replaced_at_checkout(
    pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_SECONDS", 0.0)  # every checkout counts as idle
    dropped = backend_pid()
    terminate(dropped)
    replacement = backend_pid()  # no error: the ping found it dead and the pool reconnected
    assert replacement != dropped and len(pings) >= 1


def test_a_connection_dropped_between_quick_uses_fails_once_then_the_pool_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never idle long enough
    dropped = backend_pid()
    terminate(dropped)
    with pytest.raises(OperationalError) as failed:
        backend_pid()
    assert failed.value.connection_invalidated
    assert backend_pid() != dropped
