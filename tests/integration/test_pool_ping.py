"""The pool pings a connection at checkout only after it sat idle (db/session.py), on real PostgreSQL:
a connection the server dropped while idle is replaced before anyone uses it; one in steady use
costs no ping; one dropped between two quick uses fails once, and the pool recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from pm_arb_tasks.db import session as db_session
from pm_arb_tasks.db.session import autocommit, get_autocommit_engine
from tests.support.env import database_only, terminate_backend

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[None]:
    with database_only("ping"):
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
    terminate_backend(dropped)
    replacement = backend_pid()  # no error: the ping found it dead and the pool reconnected
    assert replacement != dropped and len(pings) >= 1


def test_a_connection_dropped_between_quick_uses_fails_once_then_the_pool_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never idle long enough
    dropped = backend_pid()
    terminate_backend(dropped)
    with pytest.raises(OperationalError) as failed:
        backend_pid()
    assert failed.value.connection_invalidated
    assert backend_pid() != dropped
