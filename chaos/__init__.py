"""Fault injection on the whole stack: `python -m chaos` (`make chaos`) runs the scenarios of issue 7
and writes RELIABILITY.md; tests/integration/test_chaos_quick.py runs the shortened suite in CI."""
