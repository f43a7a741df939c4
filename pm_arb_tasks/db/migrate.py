"""Alembic driven from code: `pm-arb db upgrade`, and the start-up check that refuses to run a
worker against a database whose schema is not at head."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseNotMigrated(RuntimeError):
    """The schema is missing or behind the code; the message says which command fixes it."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def head_revision(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_migrated(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=True)
    current, head = current_revision(engine), head_revision(str(engine.url))
    if current != head:
        raise DatabaseNotMigrated(
            f"database {url} is at revision {current or 'none'}, code expects {head}: "
            "run `pm-arb db upgrade` first"
        )
