"""pm-arb-tasks: a Celery pipeline trading Polymarket crypto markets on oracle lag.

`celery -A pm_arb_tasks ...` finds the app here.
"""

from pm_arb_tasks.celery_app import app

__all__ = ["app"]
