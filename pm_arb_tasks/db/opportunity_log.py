"""The scanner's opportunity log: the rows of one scan (emitted and filtered) in one statement.

The scan writes them just after its dispatch, while the risk stage of the request it emitted
starts on the same two cores and the same PostgreSQL server; in the bench the write slowed that
stage by ~0.5 ms (BENCHMARKS.md). So on PostgreSQL it is one round trip on the driver's cursor
(`db.driver`) whose commit does not wait for the WAL flush.

What that risks: a server crash can lose the rows of the last fraction of a second (PostgreSQL
flushes an asynchronous commit within three `wal_writer_delay`s, 0.6 s by default), never the row
of an opportunity that was traded: the executor's claim commits durably, and its flush writes every
earlier commit to disk with it, the log being written in order. SQLite: one insert through
SQLAlchemy, as it was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy import Column, insert
from sqlalchemy.dialects import postgresql

from pm_arb_tasks.db import driver
from pm_arb_tasks.db.models import OpportunityRow
from pm_arb_tasks.db.session import autocommit

_COLUMNS = tuple(OpportunityRow.__table__.columns)


def _array_type(column: Column[object]) -> str:
    """The column's type without its length or precision: an explicit cast to VARCHAR(40) would cut
    a longer value where the insert refuses it."""
    return re.sub(r"\(.*?\)", "", column.type.compile(dialect=postgresql.dialect())) + "[]"


# One statement whatever the number of rows (so it is built and converted once): a column of
# values per parameter, each an array the driver writes out, unnested into rows.
_INSERT_COLUMNS = (
    "BEGIN; SET LOCAL synchronous_commit TO OFF;"
    f" INSERT INTO {OpportunityRow.__tablename__} ({', '.join(column.name for column in _COLUMNS)})"
    f" SELECT * FROM unnest({', '.join(f':{column.name}::{_array_type(column)}' for column in _COLUMNS)}); COMMIT"
)


def write(rows: Sequence[Mapping[str, object]]) -> None:
    """Insert `rows`, each with every column of the table by name."""
    if not rows:
        return
    with autocommit() as conn:
        if driver.on_driver(conn):
            driver.run(conn, _INSERT_COLUMNS, {column.name: [row[column.name] for row in rows] for column in _COLUMNS})
        else:
            conn.execute(insert(OpportunityRow), list(rows))
