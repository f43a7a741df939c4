"""`make bench` / `python -m bench`: tick-to-order latency against Celery's own floor, in one run.

The product stack runs as the Procfile starts it (separate worker processes) on a private Redis
server and a fresh PostgreSQL schema, beside a bare Celery chain of no-op tasks on identically
configured workers and a bare Redis relay, so every ratio compares numbers taken on the same
machine in the same minutes. See BENCHMARKS.md for what each row measures.
"""
