"""Use cases shared by the Celery tasks and the CLI."""
