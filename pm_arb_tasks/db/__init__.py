"""Persistence: SQLAlchemy 2.0 typed models, sessions, repositories, Alembic migrations."""
