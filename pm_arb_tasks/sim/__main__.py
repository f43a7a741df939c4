"""`python -m pm_arb_tasks.sim --port 8900 --seed 1`: serve the simulator in the foreground."""

from __future__ import annotations

import argparse
import logging

from pm_arb_tasks.sim.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pm_arb_tasks.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sim %(levelname)s %(message)s")
    serve(args.host, args.port, args.seed)


if __name__ == "__main__":
    main()
