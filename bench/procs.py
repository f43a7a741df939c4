"""Processes of a run: workers started from the Procfile's own command lines, and their memory.

A worker is started exactly as the Procfile line says (same pool, concurrency, prefetch and log
level); only `celery` becomes this interpreter's `-m celery`, and for the bare-Celery floor the
app and node name are swapped (`-A bench.floor_app`, `floor-<name>@%h`). Each process gets its
own session so that stopping it stops its pool children too, and only what this run started is
ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.services import REPO

PROCFILE = REPO / "Procfile"


def procfile(path: Path = PROCFILE) -> dict[str, list[str]]:
    """name -> argv of each Procfile line."""
    entries = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            entries[name.strip()] = shlex.split(command)
    return entries


def celery_argv(
    argv: list[str], *, app: str | None = None, node_prefix: str = "", pool: str | None = None
) -> list[str]:
    """The Procfile argv run by this interpreter, optionally for another app, node name or worker pool."""
    if argv[0] != "celery":
        raise ValueError(f"not a celery command line: {argv}")
    out = [sys.executable, "-m", "celery", *argv[1:]]
    for i, arg in enumerate(out):
        if app and arg == "-A":
            out[i + 1] = app
        if node_prefix and arg == "-n":
            out[i + 1] = node_prefix + out[i + 1]
    if pool and "worker" in out:
        for flag in ("--pool", "-P"):
            while flag in out:
                i = out.index(flag)
                del out[i : i + 2]
        out += ["--pool", pool]
    return out


def node_name(argv: list[str]) -> str | None:
    """The `-n name@%h` prefix of a worker (`name@`), to recognise its ping replies."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "-n":
            return argv[i + 1].split("@")[0] + "@"
    return None


@dataclass
class Proc:
    """One started process (and its children) with its output in a log file."""

    label: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, cwd: Path) -> Proc:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the process group this run started (warm shutdown), SIGKILL after `timeout`."""
        if not self.alive():
            return
        assert self.popen is not None
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


def stop_all(procs: list[Proc]) -> None:
    """Signal every process first, then wait: a few seconds in total, not per process."""
    for proc in procs:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs:
        if proc.popen is None:
            continue
        try:
            proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.stop(timeout=0)


# --- memory ---------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes from /proc/<pid>/smaps_rollup; zeros when the process is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Rss":
                rss = int(value.split()[0]) * 1024
            elif key == "Pss":
                pss = int(value.split()[0]) * 1024
    except OSError:
        pass
    return rss, pss


def _tree(pid: int) -> list[int]:
    tree = _children()
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(tree.get(current, []))
    return pids


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its live descendants."""
    total = 0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


@dataclass(frozen=True)
class Memory:
    label: str
    processes: int
    rss: int  # bytes, summed over the process and its children (shared pages counted in each)
    pss: int  # bytes, proportional set size: shared pages split between their users


def memory_of(label: str, pid: int) -> Memory:
    """The memory of `pid` and all of its descendants (a prefork worker and its pool)."""
    sizes = [_rollup(p) for p in _tree(pid)]
    alive = [s for s in sizes if s[0]]
    return Memory(label, len(alive), sum(s[0] for s in alive), sum(s[1] for s in alive))
