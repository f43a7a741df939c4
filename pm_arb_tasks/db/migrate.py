"""Alembic driven from code: `pm-arb db upgrade`, and the start-up check that refuses to run a
worker against a database whose schema is not at head.

The start-up check reads the stored revision with one query and compares it with `HEAD`, so a
worker never imports Alembic (and Mako, and every dialect's DDL module): about 11 MB in each of
the stack's processes. tests/integration/test_migrations.py fails when `HEAD` is not the newest
migration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0004"  # the newest file in migrations/versions
VERSION_TABLE = "alembic_version"


class DatabaseNotMigrated(RuntimeError):
    """The schema is missing or behind the code; the message says which command fixes it."""


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    """The newest revision as Alembic sees the migration files."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision stored in the database; None when it was never migrated."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def ensure_migrated(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=True)
    current = current_revision(engine)
    if current != HEAD:
        raise DatabaseNotMigrated(
            f"database {url} is at revision {current or 'none'}, code expects {HEAD}: "
            "run `pm-arb db upgrade` first"
        )
