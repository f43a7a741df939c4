"""The worker hook that keeps a prefork parent's heap shared with its children."""

from __future__ import annotations

import gc
import weakref

from celery.signals import worker_before_create_process

import pm_arb_tasks.worker_hooks  # noqa: F401  (importing it connects the hooks, as the app does)


class Node:
    itself: Node


def test_the_prefork_parent_freezes_its_heap_before_each_fork_and_its_garbage_is_freed_first() -> None:
    """Celery sends `worker_before_create_process` in the parent just before every fork; after
    it, no object the parent held is tracked by a collection the child will run, and cyclic
    garbage was collected rather than frozen (frozen, it would never be freed)."""
    gc.unfreeze()
    node = Node()
    node.itself = node
    freed = weakref.ref(node)
    del node  # only its own cycle holds it now
    try:
        assert gc.get_freeze_count() == 0
        worker_before_create_process.send(sender=None)
        assert gc.get_freeze_count() > 0
        assert freed() is None, "garbage frozen with the parent's heap"
    finally:
        gc.unfreeze()
