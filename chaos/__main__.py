"""`python -m chaos [--quick] [--output RELIABILITY.md] [--only NAME ...] [--with-soak] [--soak-minutes 30]`

Runs the fault scenarios on the whole Procfile stack against the simulator and writes RELIABILITY.md
(chaos/report.py). Exit status 1 when any scenario failed, so `make chaos` fails with it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from chaos import scenarios
from chaos.harness import DEFAULT_REDIS_PORT, Rig, rig
from chaos.report import render
from chaos.scenarios import FULL, QUICK, Profile, Result

Scenario = Callable[[Rig, Profile], Result]
# Scenarios sharing one stack whose workers reach PostgreSQL through the cuttable proxy, in order.
FAULTS: dict[str, Scenario] = {
    "redis": scenarios.redis_restart,
    "postgres": scenarios.postgres_outage,
    "sigkill": scenarios.kill_each_worker,
    "staleness": scenarios.staleness,
    "malformed": scenarios.malformed,
}
NAMES = (*FAULTS, "load", "soak")
QUICK_PROCESSES = ("beat", "oracle", "markets", "scan", "risk", "execute", "persist")  # the Procfile minus Flower


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the shortened profile CI runs")
    parser.add_argument("--output", type=Path, help="default RELIABILITY.md (RELIABILITY-<names>.md with --only)")
    parser.add_argument("--only", action="append", choices=NAMES, help="run only these scenarios (repeatable)")
    parser.add_argument("--with-soak", action="store_true", help="also the soak, after everything else")
    parser.add_argument("--soak-minutes", type=float, default=30.0)
    parser.add_argument("--redis-port", type=int, default=DEFAULT_REDIS_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    profile = replace(QUICK if args.quick else FULL, soak_seconds=args.soak_minutes * 60)
    wanted = args.only or [n for n in NAMES if n != "soak" or args.with_soak]
    output = args.output or Path("RELIABILITY.md" if not args.only else f"RELIABILITY-{'-'.join(wanted)}.md")
    started = time.monotonic()
    results = run(wanted, profile, args.redis_port)
    if "soak" not in wanted:
        results.append(not_run_soak(args.soak_minutes))
    flags = [*(["--quick"] if args.quick else []), *(["--with-soak"] if args.with_soak else [])]
    command = " ".join(["python -m chaos", *flags, *(f"--only {n}" for n in args.only or ())])
    output.write_text(render(results, profile, command, time.monotonic() - started))
    for result in results:
        verdict = "not run" if not result.times else "pass" if result.passed else "FAIL"
        print(f"{verdict}  {result.scenario}: {result.counts}", flush=True)
    print(f"wrote {output}")
    return 0 if all(r.passed for r in results if r.times) else 1


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(wanted: list[str], profile: Profile, redis_port: int) -> list[Result]:
    results: list[Result] = []
    processes = () if profile.name == FULL.name else QUICK_PROCESSES
    faults = [n for n in FAULTS if n in wanted]
    if faults:
        say("starting the stack (workers reach PostgreSQL through a proxy)")
        with rig(redis_port=redis_port, processes=processes) as r:
            scenarios.prime(r)
            for name in faults:
                say(f"scenario {name}")
                results.append(FAULTS[name](r, profile))
                revived = r.stack.revive()
                if revived:
                    say(f"restarted after crashing: {', '.join(revived)}")
    if "load" in wanted:
        say("starting a fresh stack for the load (direct PostgreSQL, alerts logged not pushed)")
        with rig(redis_port=redis_port, processes=processes, proxy_pg=False, pushover=False) as r:
            scenarios.prime(r)
            say("scenario load")
            results.append(scenarios.load(r, profile))
    if "soak" in wanted:
        say(f"starting a fresh stack for a {profile.soak_seconds / 60:g}-minute soak")
        jumps = scenarios.soak_jumps(profile.soak_seconds)
        with rig(redis_port=redis_port, processes=processes, jumps=jumps) as r:
            scenarios.prime(r)
            results.append(scenarios.soak(r, profile))
    return results


def not_run_soak(minutes: float) -> Result:
    return Result(
        "Soak", f"not run by this command ({minutes:g} min): `python -m chaos --with-soak` (everything, then the "
        "soak) or `python -m chaos --only soak`", 0,
        scenarios.Counts(), recovery="-",
    )


if __name__ == "__main__":
    sys.exit(main())
