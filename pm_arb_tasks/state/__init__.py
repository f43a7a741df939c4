"""Shared run-time state: Redis (ticks, books, market cache, exposure) and the durable halt flag."""
