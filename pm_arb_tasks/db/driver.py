"""SQL text sent on the DB-API cursor under a SQLAlchemy connection: the order path's hot statements.

Why: SQLAlchemy's execution around a statement (bind processing, the execution context, the
result's metadata and row processing) costs ~0.1-0.15 ms a statement warm and two to three times
that on a CPU that has been idle between a chain's steps (BENCHMARKS.md), as much as PostgreSQL
takes to run the statement, and the order path waits on it in the risk review's two round trips
and the executor's claim and records (the scan's opportunity log, written beside the review,
shares its cores). Only on PostgreSQL: psycopg2 already returns what the product's column
types would (Decimal money, aware datetimes, bools), and adapts the same parameters. SQLite's
driver returns times as text and money as floats, so there the statements stay with SQLAlchemy.

What callers keep: the statement still passes SQLAlchemy's cursor events (`before_cursor_execute`,
`after_cursor_execute`, with no execution context), so whatever observes the engines (tests that
count round trips, the bench's counters) sees it; a driver error is raised as SQLAlchemy's own
(`DBAPIError` and its subclasses, which the tasks catch); a connection the server dropped, or one
that a failed string of statements left inside its transaction, is invalidated, so it never goes
back to the pool.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from psycopg2.extras import NamedTupleCursor
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

_NAMED = re.compile(r"(?<![:\w]):(\w+)\b")  # `:name`, not a `::type` cast


def on_driver(conn: Connection) -> bool:
    """Whether `conn` runs the hot statements on its cursor (PostgreSQL) or through SQLAlchemy."""
    return conn.dialect.name == "postgresql"


@lru_cache(maxsize=128)  # the callers' statements are constants: a handful of strings
def pyformat(sql: str) -> str:
    """`sql` with SQLAlchemy's `:name` parameters in psycopg2's `%(name)s` style."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


def run(conn: Connection, sql: str, params: Mapping[str, Any]) -> Any:
    """Run `sql` (one or several statements, `:name` parameters) in one round trip on `conn`'s
    driver connection; the last statement's first row as a named tuple, or None if it has none."""
    statement = pyformat(sql)
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor(cursor_factory=NamedTupleCursor)
    try:
        conn.dispatch.before_cursor_execute(conn, cursor, statement, params, None, False)
        cursor.execute(statement, params)
        conn.dispatch.after_cursor_execute(conn, cursor, statement, params, None, False)
        return cursor.fetchone() if cursor.description is not None else None
    except conn.dialect.loaded_dbapi.Error as error:
        # Dropped by the server, or left inside a transaction that `sql` began (the statements after
        # the failed one were skipped, its COMMIT too): either way it must not go back to the pool.
        if dbapi_connection.closed or dbapi_connection.info.transaction_status or conn.dialect.is_disconnect(
            error, dbapi_connection, cursor
        ):
            conn.invalidate(error)
        raise DBAPIError.instance(
            statement, params, error, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from error
    finally:
        if not cursor.closed and not dbapi_connection.closed:
            cursor.close()
