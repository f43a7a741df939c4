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

from collections.abc import Mapping, Sequence

from sqlalchemy import insert

from pm_arb_tasks.db import driver
from pm_arb_tasks.db.models import OpportunityRow
from pm_arb_tasks.db.session import autocommit

_COLUMNS = tuple(column.name for column in OpportunityRow.__table__.columns)


def write(rows: Sequence[Mapping[str, object]]) -> None:
    """Insert `rows`, each with every column of the table by name."""
    if not rows:
        return
    with autocommit() as conn:
        if not driver.on_driver(conn):
            conn.execute(insert(OpportunityRow), list(rows))
            return
        values, params = [], {}
        for i, row in enumerate(rows):
            values.append("(" + ", ".join(f":{name}_{i}" for name in _COLUMNS) + ")")
            params |= {f"{name}_{i}": row[name] for name in _COLUMNS}
        driver.run(
            conn,
            f"BEGIN; SET LOCAL synchronous_commit TO OFF;"
            f" INSERT INTO {OpportunityRow.__tablename__} ({', '.join(_COLUMNS)}) VALUES {', '.join(values)}; COMMIT",
            params,
        )

