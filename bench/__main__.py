"""`python -m bench [--iterations N] [--quick] [--output BENCHMARKS.md] [--json out.json]`

One run: start the stack from the Procfile on a private Redis server and a fresh PostgreSQL
schema, twice (paper, and live against the simulator's CLOB, each on stores of its own), measure
tick-to-order on both beside the bare-Celery and bare-Redis floors (interleaved in blocks, so
machine noise hits all four alike), worker memory, the in-process hot path, the kill switch, then
the scanner and Gamma parser; print the tables and write BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from bench.procs import Memory, Proc, cpu_seconds, memory_of
from bench.report import Section, as_json, markdown, plain, write_markdown
from bench.services import (
    REPO,
    SIM_COLLATERAL,
    BenchRedis,
    RedisDbs,
    bench_environment,
    bench_schema,
    free_port,
    live_environment,
    pg_version,
    point_here,
)
from bench.sim_process import SimProcess
from bench.stats import Summary, ratio

log = logging.getLogger("bench")
MB = 1024 * 1024
DRIVER, SIMULATOR = "driver process", "simulator process"  # CPU rows of no stack's own
OUTSIDE_THE_STACKS = (DRIVER, SIMULATOR)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, help="measured opportunities per series (default 500; quick 20)")
    parser.add_argument("--quick", action="store_true", help="few iterations everywhere: a smoke run")
    parser.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="markdown file to update")
    parser.add_argument("--json", type=Path, help="also write the tables as JSON here")
    parser.add_argument(
        "--markets", type=int, default=100, help="markets scanned on every tick (at least the 40 opportunity slots)"
    )
    parser.add_argument("--blocks", type=int, help="interleaved blocks per series (default 10; quick 2)")
    parser.add_argument("--warmup", type=int, help="unmeasured opportunities per series first (default 20; quick 3)")
    parser.add_argument("--scan-sizes", type=int, nargs="+", help="scanner sizes (default 1000 10000)")
    parser.add_argument("--redis-port", type=int, default=6390, help="the bench's own redis-server (0: any free)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (printed path)")
    parser.add_argument("--pool", help="what-if: run every worker (product and floor) with this pool, e.g. solo")
    parser.add_argument("--note", default="", help="a line to record with the results (e.g. 'busy machine')")
    args = parser.parse_args(argv)
    quick = args.quick
    args.iterations = args.iterations or (20 if quick else 500)
    args.blocks = max(1, min(args.blocks or (2 if quick else 10), args.iterations))
    args.warmup = args.warmup if args.warmup is not None else (3 if quick else 20)
    args.scan_sizes = args.scan_sizes or ([1000] if quick else [1000, 10000])
    args.scan_ticks = 2 if quick else 5
    args.profile_iterations = 5 if quick else 200
    args.gamma_rows = 1000 if quick else 10000
    args.kill = (0.1, 1.5, 1.0) if quick else (0.1, 3.0, 2.0)  # interval, lead-in, tail (s)
    args.probe_seconds = 3.0 if quick else 6.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    run_dir = Path(tempfile.mkdtemp(prefix="pmarb-bench-"))
    dbs = RedisDbs()
    server = BenchRedis(args.redis_port or free_port()).ensure()
    started = datetime.now(UTC)
    meta = {"redis_server": server.version(), "load_before": os.getloadavg()}
    try:
        with (
            bench_schema() as (schema, database_url),
            bench_schema() as (live_schema, live_database_url),
            bench_schema() as (io_schema, io_database_url),
        ):
            sim_port = free_port()
            env = bench_environment(
                redis_url=server.url(dbs.product), floor_url=server.url(dbs.floor), database_url=database_url,
                sim_url=f"http://127.0.0.1:{sim_port}", floor_io_schema=io_schema,
            )
            point_here(env)
            for db in dbs.all():
                server.client(db).flushdb()
            from pm_arb_tasks.db.migrate import upgrade

            upgrade(database_url)
            upgrade(live_database_url)
            upgrade(io_database_url)
            log.info("bench: schemas %s (paper), %s (live), redis :%d, logs in %s", schema, live_schema,
                     server.port, run_dir)
            # A spot path that never steps by itself: only the scripted ticks move the price. Every
            # new venue account (the live executor's) starts with plenty of pUSD.
            full_env = {**os.environ, **env}
            live_env = live_environment(full_env, redis_url=server.url(dbs.live), database_url=live_database_url)
            sim = SimProcess(sim_port, seed=1, symbols=("BTC",), step_seconds=1e9, settings={"balance": SIM_COLLATERAL})
            with sim:
                sections, extra = run(args, full_env, live_env, io_database_url, server, dbs, sim, run_dir)
    except BaseException:
        log.error("bench: failed; worker logs kept in %s", run_dir)
        raise
    finally:
        for db in dbs.all():
            with contextlib.suppress(redis.RedisError):
                server.client(db).flushdb()
        server.stop_if_started()
    if args.keep_logs:
        log.info("bench: logs kept in %s", run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    meta = machine(args, started, {**meta, **extra})
    header = header_text(meta)
    print("\n" + header)
    for section in sections:
        print(plain(section))
    write_markdown(args.output, header + "\n" + "\n".join(markdown(s) for s in sections))
    if args.json:
        args.json.write_text(json.dumps(as_json(sections, meta), indent=1, default=str))
    print(f"written: {args.output}" + (f", {args.json}" if args.json else ""))
    return 0


def run(
    args: argparse.Namespace, env: dict[str, str], live_env: dict[str, str], floor_io_url: str, server: BenchRedis,
    dbs: RedisDbs, sim: SimProcess, run_dir: Path,
) -> tuple[list[Section], dict[str, Any]]:
    """`floor_io_url`: the database of the floor's required-I/O series."""
    from bench import floor_app, hotpath, killswitch, micro
    from bench.pipeline import (
        FloorDriver,
        PaperOrders,
        ProductDriver,
        RelayDriver,
        Stack,
        Workers,
        app_on,
    )
    from bench.universe import check_design
    from pm_arb_tasks.celery_app import app as product_app
    from pm_arb_tasks.settings import get_settings

    settings = get_settings()
    check_design(datetime.now(UTC), settings.vol_floor, settings.vol_cap, settings.min_edge)
    paper = Workers("product", product_app, env)
    live = Workers("live", app_on(live_env["REDIS_URL"]), live_env, node_prefix="live-")
    floor = Workers("floor", floor_app.app, env, app_arg="bench.floor_app", node_prefix="floor-")
    stack = Stack(env, [paper, live, floor], server, dbs, run_dir, pool=args.pool)
    product = ProductDriver(stack, paper, sim, args.markets, PaperOrders(server.client(dbs.product)))
    live_driver = ProductDriver(stack, live, sim, args.markets, sim.venue, venue=True)
    log.info("bench: starting %d processes", len(stack.procs))
    t = time.monotonic()
    extra: dict[str, Any] = {}
    try:
        stack.start()
        extra["startup_seconds"] = time.monotonic() - t
        drivers = {
            "product": product, "live": live_driver, "floor": FloorDriver(stack, server, dbs),
            "floor_io": FloorDriver(stack, server, dbs, io=True), "relay": RelayDriver(server, dbs),
        }
        for name, driver in drivers.items():
            with driver.active():
                for _ in range(args.warmup):
                    driver.one()
            log.info("bench: %s warmed up", name)
        samples: dict[str, list[Any]] = {name: [] for name in drivers}
        commands: dict[str, Counter[str]] = {name: Counter() for name in drivers}
        cpu: dict[str, Counter[str]] = {name: Counter() for name in drivers}
        per_block = [args.iterations // args.blocks + (i < args.iterations % args.blocks) for i in range(args.blocks)]
        own_commands = hotpath.Counters()  # the driver's own Redis traffic (seeding, sending polls)
        for block, n in enumerate(per_block):
            for name, driver in drivers.items():
                with driver.active():
                    before, cpu_before, own = command_calls(server), _cpu(stack, name), time.process_time()
                    sim_before = cpu_seconds(sim.pid)
                    own_commands.stage = name
                    with hotpath.instrumented(own_commands):
                        for _ in range(n):
                            sample = driver.one()
                            if sample is not None:
                                samples[name].append(sample)
                    own_commands.stage = ""
                    commands[name] += command_calls(server) - before
                    cpu[name] += Counter({k: v - cpu_before.get(k, 0.0) for k, v in _cpu(stack, name).items()})
                    cpu[name][DRIVER] += time.process_time() - own
                    cpu[name][SIMULATOR] += cpu_seconds(sim.pid) - sim_before
            log.info("bench: block %d/%d done (%d each)", block + 1, args.blocks, n)
        extra["misses"] = {name: driver.misses for name, driver in drivers.items()}
        extra["irregular"] = {"product": product.irregular, "live": live_driver.irregular,
                              "floor": drivers["floor"].irregular, "floor_io": drivers["floor_io"].irregular}
        extra["unfilled"] = live_driver.unfilled
        memory = stack.memory("product") + stack.memory("live") + stack.memory("floor")
        rows_written = {"product": table_rows()}
        with live_driver.active():
            rows_written["live"] = table_rows()
        rows_written["floor_io"] = table_rows(floor_io_url)
        opportunities = args.warmup + args.iterations
        log.info("bench: profiling the hot path in-process (%d opportunities)", args.profile_iterations)
        hot = hotpath.profile(product, args.profile_iterations, warmup=min(args.warmup, 5))
        log.info("bench: kill switch")
        interval, lead_in, tail = args.kill
        kill = killswitch.measure(product, interval, lead_in, tail)
    finally:
        stack.stop()
    log.info("bench: beat and flower memory")
    memory += probe_memory(env, server, dbs, run_dir, args.probe_seconds)
    log.info("bench: scanner and Gamma parser")
    scan_rows = micro.scanner(server.url(dbs.scanner), run_dir, args.scan_sizes, args.scan_ticks)
    gamma = micro.gamma_parse(args.gamma_rows)
    footprint = micro.import_footprint(env)
    counts = {k: len(v) for k, v in samples.items()}
    sections = [
        latency_section(samples, args),
        hops_section(samples),
        kill_section(kill),
        scanner_section(scan_rows, args),
        gamma_section(gamma),
        memory_section(memory, footprint),
        hotpath_section(hot),
        cpu_section(cpu, counts),
        commands_section(commands, own_commands, counts),
        rows_section(rows_written, opportunities),
    ]
    return sections, extra


# --- measurements around the run ---------------------------------------------------------------


def command_calls(server: BenchRedis) -> Counter[str]:
    """Redis server-wide command counts (the bench server only carries this run)."""
    stats = server.client().info("commandstats")
    return Counter({key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()})


def table_rows(database_url: str | None = None) -> dict[str, int]:
    """Rows per product table in the settings' database, or in `database_url`."""
    from sqlalchemy import func, select

    from pm_arb_tasks.db.models import Base
    from pm_arb_tasks.db.session import engine_for, get_engine

    with (engine_for(database_url) if database_url else get_engine()).connect() as conn:
        return {
            table.name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


def _cpu(stack: Any, series: str) -> dict[str, float]:
    """CPU seconds of the processes a series runs on, labelled with the series' name (the
    required-I/O floor runs on the floor's workers)."""
    workers = WORKERS_OF.get(series, series)
    return {f"{series}{label.removeprefix(workers)}": v for label, v in stack.cpu(workers).items()}


def probe_memory(env: dict[str, str], server: BenchRedis, dbs: RedisDbs, run_dir: Path, seconds: float) -> list[Memory]:
    """beat and flower, as the Procfile starts them, on a database of their own, for their memory only."""
    from bench.procs import celery_argv, procfile

    probe_env = {
        **env, "REDIS_URL": server.url(dbs.probe), "FLOWER_PORT": str(free_port()), "FLOWER_ADDRESS": "127.0.0.1",
    }
    lines = procfile()
    flower = [str(Path(sys.executable).with_name(lines["flower"][0])), *lines["flower"][1:]]
    procs = [
        Proc("beat", [*celery_argv(lines["beat"]), "--schedule", str(run_dir / "beat-schedule")], probe_env,
             run_dir / "beat.log"),
        Proc("flower", flower, probe_env, run_dir / "flower.log"),
    ]
    for proc in procs:
        proc.start(run_dir)
    try:
        time.sleep(seconds)  # let both finish importing and settle; there is nothing to poll for
        return [memory_of(p.label, p.pid) for p in procs if p.alive()]
    finally:
        for proc in procs:
            proc.stop()


def machine(args: argparse.Namespace, started: datetime, extra: dict[str, Any]) -> dict[str, Any]:
    import celery
    import kombu

    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem_kb = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )
    return {
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench " + shlex.join(sys.argv[1:]),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "postgresql": _safe(pg_version),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "blocks": args.blocks,
        "markets": args.markets,
        "pool": args.pool or "as in the Procfile",
        "note": args.note,
        **extra,
        "load_before": [round(x, 2) for x in extra["load_before"]],
    }


def _safe(fn: Any) -> str:
    try:
        return str(fn())
    except Exception:
        return "?"


def header_text(meta: dict[str, Any]) -> str:
    busy = meta["load_before"][0] > 0.5 * (meta["nproc"] or 1)
    lines = [
        f"## Run of {meta['date']}",
        "",
        f"- command: `{meta['command']}` ({meta['iterations']} measured per series after {meta['warmup']} warm-up, "
        f"{meta['blocks']} interleaved blocks; {meta['markets']} markets scanned per tick; "
        f"worker pools: {meta['pool']})",
        f"- machine: {meta['nproc']} CPU ({meta['cpu']}), {meta['memory_gb']} GB RAM; load average before "
        f"{meta['load_before']}, after {meta['load_after']}"
        + (" — **busy machine**: other work was running" if busy else ""),
        f"- versions: Python {meta['python']}, Celery {meta['celery']}, kombu {meta['kombu']}, "
        f"redis-py {meta['redis_py']}, "
        f"Redis {meta['redis_server']}, PostgreSQL {meta['postgresql']}",
        f"- stack start-up: {meta.get('startup_seconds', math.nan):.0f} s; missed samples {meta.get('misses')}; "
        f"chains without a complete event trail {meta.get('irregular')}; "
        f"live orders the simulator did not fill {meta.get('unfilled')}",
    ]
    if meta["note"]:
        lines.append(f"- note: {meta['note']}")
    return "\n".join(lines) + "\n"


# --- sections ---------------------------------------------------------------------------------

LATENCY_COLUMNS = ["n", "p50", "p90", "p99"]
POLL_SPLIT = ("poll: oracle reply", "poll: reply to the scan sent", "from the oracle reply")


def _summary_values(values: list[float]) -> dict[str, float]:
    s = Summary.of_seconds(values)
    return {"n": s.n, "p50": s.p50, "p90": s.p90, "p99": s.p99}


SERIES = {  # series -> row label in the latency table
    "product": "tick-to-order (paper, product stack)",
    "live": "tick-to-order (live, product stack → simulator's CLOB)",
    "floor": "bare Celery chain, no-op tasks",
    "floor_io": "bare Celery chain + the order path's required round trips",
    "relay": "bare Redis relay (LPUSH/BRPOP)",
}
PRODUCT_SERIES = ("product", "live")  # the series that run the product's own chain (the others: floors)
CHAIN_SERIES = ("product", "live", "floor", "floor_io")  # the series whose chain is Celery's (task events, stages)
WORKERS_OF = {"floor_io": "floor"}  # a series run on another series' worker processes


def latency_section(samples: dict[str, list[Any]], args: argparse.Namespace) -> Section:
    from bench.pipeline import STAGES

    section = Section("Tick-to-order against the floors (ms)", LATENCY_COLUMNS)
    totals = {name: [s.total for s in found] for name, found in samples.items()}
    for name, label in SERIES.items():
        section.add(label, _summary_values(totals[name]))
        if name not in CHAIN_SERIES:
            continue
        for stage in STAGES:
            section.add(stage, _summary_values([s.stages[stage] for s in samples[name] if s.stages]), indent=1)
        if name in PRODUCT_SERIES:
            for stage in POLL_SPLIT:
                values = [s.stages[stage] for s in samples[name] if stage in s.stages]
                section.add(stage, _summary_values(values), indent=2)
    summary = {name: Summary.of_seconds(values) for name, values in totals.items()}
    floor, relay = summary["floor"], summary["relay"]
    section.add(
        "ratio tick-to-order ÷ bare Celery", _ratios(summary["product"], floor),
        note="from the clock reading before the oracle request: the upstream's reply time included",
    )
    replied = Summary.of_seconds([s.stages["from the oracle reply"] for s in samples["product"]
                                  if "from the oracle reply" in s.stages])
    section.add(
        "ratio from the oracle reply ÷ bare Celery", _ratios(replied, floor),
        note="the goal's reading (≤ 1.5 at p50): from the price in hand, as the floor's poll starts "
        "(it makes no HTTP call)",
    )
    section.add(
        "ratio bare Celery + required round trips ÷ bare Celery", _ratios(summary["floor_io"], floor),
        note="what the invariants' own round trips cost on this machine, before any logic",
    )
    section.add(
        "ratio from the oracle reply ÷ (bare Celery + required round trips)", _ratios(replied, summary["floor_io"]),
        note="the product over the cheapest correct order path",
    )
    section.add(
        "ratio tick-to-order (live) ÷ bare Celery", _ratios(summary["live"], floor),
        note="live ends when the simulator receives POST /order",
    )
    section.add("ratio tick-to-order (live) ÷ (paper)", _ratios(summary["live"], summary["product"]))
    section.add("ratio bare Celery ÷ bare Redis", _ratios(floor, relay))
    section.text = (
        "Stage percentiles are taken per stage, so they do not add up to the total's percentiles. "
        "Stage boundaries: the oracle tick (poll's clock reading) → scan `task-received` → risk `task-sent` → "
        "risk `task-received` → execute `task-sent` → execute `task-received` → the venue call: for paper, the "
        "paper venue's own stamp; for live, the simulator receiving the signed order's `POST /order` (a hook on "
        "its Flask app), so live's execute→venue holds the CLOB reads before signing (the token's book, our "
        "collateral), the EIP-712 signature, the L2 headers, the send and one loopback crossing; the venue's "
        "matching and reply come after it. "
        "poll: oracle reply = tick → the simulator had written its whole price reply to the socket (the upstream's "
        "own time, measured by a hook on the simulator's Flask app); from the oracle reply = that moment → the "
        "venue call."
    )
    return section


def _ratios(a: Summary, b: Summary) -> dict[str, float]:
    return {"p50": ratio(a.p50, b.p50), "p90": ratio(a.p90, b.p90), "p99": ratio(a.p99, b.p99)}


def hops_section(samples: dict[str, list[Any]]) -> Section:
    from bench.pipeline import HOPS

    columns = [f"{name} {q}" for q in ("p50", "p99") for name in CHAIN_SERIES]
    section = Section("Celery hops inside the chains (ms)", columns)
    for queue in HOPS:
        for part in ("broker hop (sent→received)", "pool hand-off (received→started)", "task body (runtime)"):
            key = f"{queue}: {part}"
            values = {}
            for name in CHAIN_SERIES:
                found = Summary.of_seconds([s.hops[key] for s in samples[name] if key in s.hops])
                values[f"{name} p50"], values[f"{name} p99"] = found.p50, found.p99
            section.add(key, values)
    section.text = (
        "product: the paper stack; live: the live stack; floor_io: the floor's workers with the order path's "
        "required round trips. `task-sent` is stamped by the publisher just after its publish returns, so a fast "
        "consumer can log `task-received` first (a small negative hop). `task-started` comes from the worker's "
        "main process when the pool reports the job accepted. runtime: the task body as Celery timed it in the "
        "pool process."
    )
    return section


def kill_section(kill: Any) -> Section:
    section = Section("Kill switch while requests flow", ["value"])
    section.add("ticks sent (one request each)", {"value": kill.ticks})
    section.add("orders placed before stop() was called", {"value": kill.orders_before})
    section.add("orders placed after stop() was called", {"value": kill.orders_after_call}, note="goal: at most 1")
    section.add("orders placed after stop() returned", {"value": kill.orders_after_return})
    section.add(
        "stop() duration (ms)", {"value": kill.stop_seconds * 1000}, note="halt flag, consumer broadcast, alert"
    )
    section.add(
        "last order minus stop() return (ms)", {"value": kill.latency * 1000},
        note="goal < 1000; negative: nothing left after stop() returned",
    )
    section.text = f"Workers that answered the consumer-cancel broadcast: {', '.join(kill.acknowledged) or 'none'}."
    return section


def scanner_section(rows: Any, args: argparse.Namespace) -> Section:
    section = Section("Scanner (bench/bench_scan.py)", ["markets", "ms/tick", "best ms", "markets/s"])
    if isinstance(rows, str):
        section.text = f"not measured: {rows}"
        return section
    for row in rows:
        section.add(
            f"scan {row.path} {row.markets:,} markets",
            {"markets": row.markets, "ms/tick": row.ms_per_tick, "best ms": row.best_ms,
             "markets/s": row.markets_per_second},
        )
    section.text = (
        f"Median of {args.scan_ticks} ticks. pure: the float screen (`screen`, on the universe's `plan_for`, "
        "built once and untimed as the scanner does per market set) of every market, then the exact Decimal "
        "evaluation (`evaluate_kept`) of the outcomes it kept, with markets and books in memory; redis: the whole "
        "`scan()` with markets, book tops and ticks read from Redis (every book stored again before each tick, as "
        "the book poll does), cooldown claims, the throttled opportunity log (SQLite) and a no-op dispatch."
    )
    return section


def gamma_section(gamma: Any) -> Section:
    section = Section("Gamma page parsing", ["rows", "rows/s", "pages/s"])
    section.add(
        "parse_market on generated rows", {"rows": gamma.rows, "rows/s": gamma.rows_per_second,
                                           "pages/s": gamma.pages_per_second},
        note=f"{gamma.page_size}-row pages; pages/s includes json.loads of the body; {gamma.classified} classified",
    )
    return section


def memory_section(memory: list[Memory], footprint: list[tuple[str, int]]) -> Section:
    section = Section("Memory after the run (MB)", ["processes", "RSS", "PSS"])
    for m in memory:
        section.add(m.label, {"processes": m.processes, "RSS": m.rss / MB, "PSS": m.pss / MB})
    for workers, label, note in (
        ("product", "whole stack (product workers + beat + flower)", "goal < 600 MB"),
        ("live", "whole stack, live (live workers + beat + flower)", "the same stack trading live"),
    ):
        stack = [m for m in memory if m.label.startswith(f"{workers} ") or m.label in ("beat", "flower")]
        section.add(
            label,
            {"processes": sum(m.processes for m in stack), "RSS": sum(m.rss for m in stack) / MB,
             "PSS": sum(m.pss for m in stack) / MB},
            note=note,
        )
    steps = [f"{label} {size / MB:.0f} MB" for label, size in footprint]
    section.text = (
        "Per Procfile process including its pool children. RSS counts pages shared between a prefork parent and "
        "its children in each; PSS splits them, so the PSS sum is the stack's real footprint. "
        "live rows: the same worker command lines with PAPER_TRADING=false (the executor holds the venue SDK); "
        "floor rows: the same worker command lines with no-op tasks only (neither is part of the paper stack).\n\n"
        "What every worker process imports (RSS of a fresh interpreter after each import, cumulative): "
        + " → ".join(steps)
    )
    return section


def hotpath_section(hot: Any) -> Section:
    columns = ["ms", "redis trips", "redis cmds", "sql trips", "sql stmts", "sql compiles"]
    section = Section(f"Hot path in-process, per opportunity (median of {hot.iterations})", columns)
    for stage, ms in hot.ms.items():
        counts = hot.per_op[stage]
        trips = sum(counts.get(k, 0) for k in ("sql ping", "sql begin", "sql statements", "sql commit"))
        values = {
            "ms": ms, "redis trips": counts.get("redis round trips", 0), "redis cmds": counts.get("redis commands", 0),
            "sql trips": trips, "sql stmts": counts.get("sql statements", 0),
            "sql compiles": counts.get("sql compiles", 0),
        }
        section.add(stage, values)
    lines = ["Bare round trips from the same process (median): "
             + "; ".join(f"{what} {us:.0f} µs" for what, us in hot.round_trips.items()), ""]
    lines += ["Serialisation per chain message (pydantic model ↔ JSON, as the tasks do):", ""]
    for name, size, dump, load in hot.serialisation:
        lines.append(f"- {name}: {size} bytes, dump {dump:.0f} µs, load {load:.0f} µs")
    for title, table in (
        ("Our functions by cumulative time", hot.ours),
        ("Top self time (any code)", hot.top),
        ("SQL statements by time (execution only, ORM overhead excluded)", hot.sql),
    ):
        lines += ["", f"{title}, per stage (µs per opportunity, calls per opportunity):", ""]
        for stage, rows in table.items():
            if rows:
                tops = "; ".join(f"`{fn}` {us:.0f} µs in {calls:.2g} calls" for fn, us, calls in rows[:6])
                lines.append(f"- **{stage}**: {tops}")
    section.text = "\n".join(lines)
    return section


def cpu_section(cpu: dict[str, Counter[str]], counts: dict[str, int]) -> Section:
    section = Section("CPU per opportunity on the running stacks (ms)", [*CHAIN_SERIES, "relay"])
    names: dict[str, None] = {}
    for found in cpu.values():
        names.update((label.split(" ", 1)[-1] if label not in OUTSIDE_THE_STACKS else label, None) for label in found)
    for name in names:
        values = {}
        for kind, found in cpu.items():
            label = name if name in OUTSIDE_THE_STACKS else f"{kind} {name}"
            if label in found:
                values[kind] = found[label] * 1000 / max(counts[kind], 1)
        section.add(name, values)
    section.add(
        "all worker processes",
        {kind: sum(v for k, v in found.items() if k not in OUTSIDE_THE_STACKS) * 1000 / max(counts[kind], 1)
         for kind, found in cpu.items()},
    )
    section.text = (
        "User + system CPU of each process tree during its own series' blocks, divided by the chains measured "
        "(10 ms clock-tick resolution; idle workers' heartbeats included). product: the paper stack; live: the "
        "live stack. On a 2-core machine this, more than wall time, is what a busy machine multiplies. driver "
        "process: seeding, sending the polls, event capture; simulator process: its oracle and CLOB replies "
        "(`bench.sim_process`), the live series' venue included."
    )
    return section


def commands_section(commands: dict[str, Counter[str]], own: Any, counts: dict[str, int]) -> Section:
    title = "Redis commands per opportunity on the running stacks (server-wide, per measured chain)"
    section = Section(title, list(CHAIN_SERIES))
    per = {name: max(counts[name], 1) for name in CHAIN_SERIES}
    for name, _ in sum((commands[k] for k in CHAIN_SERIES), Counter()).most_common(14):
        section.add(name, {k: commands[k][name] / per[k] for k in CHAIN_SERIES})
    section.add("all commands", {k: sum(commands[k].values()) / per[k] for k in CHAIN_SERIES})
    section.add(
        "of which the driver's own", {k: own.counts[k]["redis commands"] / per[k] for k in CHAIN_SERIES},
        note="seeding markets and books (the background books every 1.5 s, as the book poll would), sending the poll",
    )
    section.text = (
        "Counted by the server (INFO commandstats) over each series' blocks; includes every worker's idle traffic "
        "(heartbeats, BRPOP timeouts), the other stacks' too. The driver's own commands are counted client-side "
        "(MULTI/EXEC not included)."
    )
    return section


def rows_section(rows: dict[str, dict[str, int]], opportunities: int) -> Section:
    modes = (("product", "paper"), ("live", "live"), ("floor_io", "floor_io"))
    columns = [column for _, mode in modes for column in (f"{mode} rows", f"{mode}/opp")]
    section = Section("Database rows per opportunity on the running stacks", columns)
    for table in sorted({**rows["product"], **rows["live"]}):
        values: dict[str, float] = {}
        for series, mode in modes:
            n = rows[series].get(table, 0)
            if n:
                values[f"{mode} rows"], values[f"{mode}/opp"] = n, n / max(opportunities, 1)
        if values:
            section.add(table, values)
    section.text = (
        "Each stack's own schema, counted after the interleaved blocks (warm-up included), before the hot path and "
        "the kill switch add their own."
    )
    return section


if __name__ == "__main__":
    sys.exit(main())
