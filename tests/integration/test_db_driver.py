"""The order path's statements on psycopg2's own cursor (db/driver.py), on real PostgreSQL: they
return what SQLAlchemy's typed columns would, show in the engines' cursor events, fail as
SQLAlchemy's errors, and a connection the server dropped never goes back to the pool."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, ProgrammingError

from pm_arb_tasks.db import driver
from pm_arb_tasks.db.session import autocommit, get_autocommit_engine
from pm_arb_tasks.risk import book, guardian
from pm_arb_tasks.state.halt import set_halt
from tests.support.env import database_only, terminate_backend
from tests.support.risk import request, snapshot
from tests.support.sql import statements_sent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def stores() -> Iterator[None]:
    with database_only("driver"):
        yield


def test_parameters_are_rewritten_for_psycopg2_and_casts_and_percents_survive() -> None:
    assert driver.pyformat("SELECT :a::text, x % 2, :b_c FROM t WHERE y = :a") == (
        "SELECT %(a)s::text, x %% 2, %(b_c)s FROM t WHERE y = %(a)s"
    )
    with autocommit() as conn:
        row = driver.run(conn, "SELECT :a::text AS a, 7 % 4 AS m, :n AS n", {"a": "x", "n": D("1.5")})
    assert (row.a, row.m, row.n) == ("x", 3, D("1.5"))


def test_the_review_read_returns_what_sqlalchemys_typed_columns_return() -> None:
    """The read of the rules' inputs, once through SQLAlchemy (typed result columns) and once on the
    driver: every value equal and of the same type (Decimal money, aware datetimes, text, ints)."""
    decision = guardian.review(request("m1", "5"), datetime.now(UTC))
    assert decision.approved
    snapshot("250")
    set_halt(True, "checking types")
    now = datetime.now(UTC)
    params = {
        "book_mode": "paper", "book_market": "m1", "book_request": decision.request.request_id, "book_now": now,
        "book_day_start": now.replace(hour=0, minute=0, second=0, microsecond=0), "book_bankroll": D(300),
    }
    with autocommit() as conn:
        typed = conn.execute(book._clause(book._READ, book._READ), params).one()._asdict()
        raw = driver.run(conn, book._READ, book._FIXED | params)._asdict()
    assert raw == typed
    assert {name: type(value) for name, value in raw.items()} == {name: type(value) for name, value in typed.items()}
    assert isinstance(raw["total"], D) and raw["last_approval"].utcoffset() is not None and raw["halt"]
    set_halt(False, "")


def test_statements_show_in_the_cursor_events_and_are_never_compiled() -> None:
    with statements_sent() as sent, autocommit() as conn:
        driver.run(conn, "SELECT :x AS x", {"x": 1})
    assert sent == [("SELECT %(x)s AS x", False)]


def test_a_driver_error_is_sqlalchemys_and_the_connection_stays_usable() -> None:
    with autocommit() as conn:
        with pytest.raises(ProgrammingError, match="no_such_table"):
            driver.run(conn, "SELECT * FROM no_such_table WHERE id = :id", {"id": 1})
        assert not conn.invalidated
        assert driver.run(conn, "SELECT 1 AS one", {}).one == 1


def test_a_connection_the_server_dropped_is_invalidated_not_pooled() -> None:
    get_autocommit_engine().dispose()
    with autocommit() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        terminate_backend(pid)
        with pytest.raises(OperationalError):
            driver.run(conn, "SELECT 1 AS one", {})
        assert conn.invalidated
    with autocommit() as conn:  # the pool hands out a new connection, not the dead one
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
        assert driver.run(conn, "SELECT 1 AS one", {}).one == 1
