"""The venue simulator: one local HTTP server speaking the upstream APIs the adapters use
(Binance, Coinbase, CoinGecko, Gamma, CLOB reads and orders, Pushover), driven by a seedable
`Scenario` and steered over `/sim/*` control endpoints.

Entry points: `serve(host, port, seed)` (blocking; `python -m pm_arb_tasks.sim`, `pm-arb sim`)
and `running_sim(...)` (a context manager for tests and benchmarks that yields a handle with
`.url` and `.scenario`).
"""

from pm_arb_tasks.sim.server import SimServer, create_app, running_sim, serve

__all__ = ["SimServer", "create_app", "running_sim", "serve"]
