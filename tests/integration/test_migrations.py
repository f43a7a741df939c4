"""The Alembic migrations build exactly the schema the typed models describe, on both databases:
a model change without its migration (or the reverse) fails here, not in production."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from pm_arb_tasks.db.migrate import HEAD, current_revision, head_revision
from pm_arb_tasks.db.models import Base
from tests.support.env import fresh_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgres", "sqlite"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, "migrations", str(tmp_path)) as url:
        yield url


def test_migrated_schema_matches_the_models(migrated: str) -> None:
    engine = create_engine(migrated)
    try:
        assert current_revision(engine) == head_revision(migrated) == HEAD  # the start-up check's HEAD is current
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
