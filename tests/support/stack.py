"""The Procfile's processes with a given environment: start all or some, SIGKILL one, restart one,
read their memory, stop them all. Used by the chaos scenarios (`python -m chaos`) and their tests.

The Procfile parsing, the command-line translation (`celery` -> this interpreter's `-m celery`),
the process handle and the /proc memory reading are the benchmark's (bench/procs.py), shared
rather than copied. What this adds is the bookkeeping a fault-injection run needs: which exits
were ours (kill, stop) and which were crashes, one log per process across restarts, and
readiness by each worker's own ping reply.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from celery.utils.nodenames import host_format
from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from bench.procs import Memory, Proc, celery_argv, memory_of, node_name, procfile, stop_all
from bench.services import REPO

WORKERS = ("oracle", "markets", "scan", "risk", "execute", "persist")
TRACEBACK = "Traceback (most recent call last)"
RECORD = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+): ")  # a Celery log record's header


def argv_for(command: list[str]) -> list[str]:
    """A Procfile command run from this virtualenv: celery via `-m celery`, console scripts from bin/."""
    if command[0] == "celery":
        return celery_argv(command)
    script = Path(sys.executable).parent / command[0]
    return [str(script), *command[1:]] if script.exists() else command


@dataclass
class Exit:
    """A process that ended without being told to: a crash."""

    name: str
    returncode: int | None
    at: float  # time.time()


@dataclass
class Stack:
    """The Procfile's processes under `env`, logs in `run_dir/<name>.log` (appended across restarts)."""

    env: dict[str, str]
    run_dir: Path
    procs: dict[str, Proc] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    starts: dict[str, int] = field(default_factory=dict)
    _ended: set[int] = field(default_factory=set)  # pids we killed or stopped, or whose exit is recorded

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.commands = {name: argv_for(argv) for name, argv in procfile().items()}

    # --- life cycle -----------------------------------------------------------------------

    def start(self, *names: str) -> Stack:
        """Start the named processes (all of the Procfile when none is named)."""
        for name in names or tuple(self.commands):
            if name not in self.commands:
                raise KeyError(f"{name!r} is not a Procfile process ({', '.join(self.commands)})")
            proc = Proc(name, self.commands[name], self.env, self.run_dir / f"{name}.log")
            self.procs[name] = proc.start(REPO)
            self.starts[name] = self.starts.get(name, 0) + 1
        return self

    def wait_ready(self, *names: str, timeout: float = 120) -> None:
        """Until every named worker (default: all started ones) answers a ping on the stack's broker."""
        from pm_arb_tasks.celery_app import app

        wanted = {self.hostname(n): n for n in names or tuple(self.procs) if self.hostname(n)}
        deadline = time.monotonic() + timeout
        while True:
            self.check_crashes()
            missing = [n for n in wanted.values() if not self.alive(n)]
            if missing:
                raise RuntimeError(f"{', '.join(missing)} exited while starting:\n{self.tail(missing[0])}")
            try:
                replies = app.control.ping(destination=list(wanted), timeout=1.0) or []
            except (OSError, RedisError, KombuError):  # the broker restarted under a pooled connection
                app._after_fork()  # drop the pools; the next ping connects afresh
                replies = []
            answered = {host for reply in replies for host in reply}
            if set(wanted) <= answered:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers {sorted(set(wanted) - answered)} did not answer ping in {timeout}s")

    def kill(self, name: str) -> None:
        """SIGKILL the process and its pool children: no warm shutdown, no acks."""
        proc = self.procs[name]
        self.check_crashes()
        if proc.alive():
            assert proc.popen is not None
            self._ended.add(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait(timeout=10)

    def restart(self, name: str, timeout: float = 120) -> float:
        """Kill (if alive), start again, wait until it answers; returns the seconds it took to answer."""
        self.kill(name)
        started = time.monotonic()
        self.start(name)
        if self.hostname(name):
            self.wait_ready(name, timeout=timeout)
        return time.monotonic() - started

    def revive(self, timeout: float = 120) -> list[str]:
        """Start again whatever crashed (as a supervisor would); the crashes stay recorded in `exits`."""
        crashed = sorted({e.name for e in self.check_crashes()} - {n for n in self.procs if self.alive(n)})
        for name in crashed:
            self.start(name)
        workers = [n for n in crashed if self.hostname(n)]
        if workers:
            self.wait_ready(*workers, timeout=timeout)
        return crashed

    def stop(self) -> None:
        """Warm shutdown of everything started here (SIGTERM, SIGKILL after a grace period)."""
        self.check_crashes()
        self._ended.update(p.pid for p in self.procs.values() if p.alive())
        stop_all(list(self.procs.values()))

    # --- observation ----------------------------------------------------------------------

    def hostname(self, name: str) -> str | None:
        """The worker's node name as it answers pings (`execute@host`); None for beat and flower."""
        prefix = node_name(self.commands[name])
        return host_format(f"{prefix}%h", hostname=socket.gethostname()) if prefix else None

    def alive(self, name: str) -> bool:
        return name in self.procs and self.procs[name].alive()

    def check_crashes(self) -> list[Exit]:
        """Record processes that ended on their own since the last look (each one once)."""
        for name, proc in self.procs.items():
            if proc.popen is None or proc.alive() or proc.pid in self._ended:
                continue
            self._ended.add(proc.pid)
            self.exits.append(Exit(name, proc.popen.returncode, time.time()))
        return self.exits

    def memory(self, *names: str) -> dict[str, Memory]:
        """RSS (and PSS) per process, its pool children included, from /proc."""
        return {n: memory_of(n, self.procs[n].pid) for n in names or tuple(self.procs) if self.alive(n)}

    def log_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.log"

    def log_size(self, name: str) -> int:
        try:
            return self.log_path(name).stat().st_size
        except FileNotFoundError:
            return 0

    def log(self, name: str, since: int = 0) -> str:
        """The process's output from byte offset `since` (see `log_size`)."""
        try:
            with self.log_path(name).open("rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.log(name).splitlines()[-lines:])

    def offsets(self) -> dict[str, int]:
        return {name: self.log_size(name) for name in self.procs}

    def traceback_records(self, since: dict[str, int] | None = None) -> dict[str, list[str]]:
        """Per process, the log record that introduced each traceback, in the output written after
        `since` (offsets from `offsets()`). Tracebacks of one process less than a second apart are
        one incident: chained exceptions, and beat writing a traceback to its log line by line."""
        since = since or {}
        found: dict[str, list[str]] = {}
        for name in self.procs:
            header, at, last = "", 0.0, -1e18
            records = found.setdefault(name, [])
            for line in self.log(name, since.get(name, 0)).splitlines():
                stamp = RECORD.match(line)
                if stamp:
                    at = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                    if TRACEBACK not in line:
                        header = line
                if TRACEBACK in line:
                    if at - last > 1.0:
                        records.append(header or line)
                    last = at
        return found
