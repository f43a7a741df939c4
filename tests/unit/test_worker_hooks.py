"""The worker hook that keeps a prefork parent's heap shared with its children."""

from __future__ import annotations

import gc

from celery.signals import worker_before_create_process

import pm_arb_tasks.worker_hooks  # noqa: F401  (importing it connects the hooks, as the app does)


def test_the_prefork_parent_freezes_its_heap_before_each_fork() -> None:
    """Celery sends `worker_before_create_process` in the parent just before every fork; after
    it, no object the parent held is tracked by a collection the child will run."""
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        worker_before_create_process.send(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
