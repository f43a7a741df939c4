"""`pm-arb up --sim` exactly as `make run` starts it, from a shell whose PATH lacks the virtualenv:
every Procfile line (`celery ...` and `pm-arb flower`) starts, beat's first alert reaches the
simulator's Pushover endpoint with placeholder keys (never the operator's), and Ctrl-C (SIGINT to
the foreground process group) leaves no process of the stack behind.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from bench.procs import node_name
from bench.services import REPO, free_port
from pm_arb_tasks.celery_app import app
from pm_arb_tasks.cli.stack import SIM_PUSHOVER_API_TOKEN, SIM_PUSHOVER_USER_KEY, read_procfile
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.ops import STACK_REDIS_DB
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
PM_ARB = str(Path(sys.executable).with_name("pm-arb"))
FLOWER_AUTH = ("operator", "stack-test-Pa55word")
OPERATOR_PUSHOVER = {  # what an operator's .env would hold: must never reach the simulator
    "PUSHOVER_USER_KEY": "uoperatorrealkey0123456789abcd",
    "PUSHOVER_API_TOKEN": "aoperatorrealtoken0123456789ab",
}


def path_without_the_virtualenv() -> str:
    """PATH minus every directory holding a `celery` or `pm-arb`: an operator who never activated
    the virtualenv (and whatever other installs a test machine has)."""
    keep = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if d and not any(os.access(os.path.join(d, exe), os.X_OK) for exe in ("celery", "pm-arb"))]
    return os.pathsep.join(keep or [os.defpath])


@dataclass(frozen=True)
class Started:
    """A process identity that survives pid reuse: the pid and its start time in clock ticks."""

    pid: int
    start: str

    def alive(self) -> bool:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return False
        return fields[19] == self.start and fields[0] != "Z"  # a zombie has exited


def descendants(root: int) -> set[Started]:
    """Every live process below `root`, whatever session or process group it put itself in."""
    children: dict[int, list[Started]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(Started(int(entry), fields[19]))
    found: set[Started] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child.pid)
    return found


def started_environments(processes: set[Started], up_pid: int) -> list[bytes]:
    """The environments the stack's commands were started with; honcho's helper processes are
    forks of `pm-arb up` itself and carry its (the caller's) environment, so they are left out."""
    own = Path(f"/proc/{up_pid}/cmdline").read_bytes()
    found = []
    for process in processes:
        try:
            if Path(f"/proc/{process.pid}/cmdline").read_bytes() != own:
                found.append(Path(f"/proc/{process.pid}/environ").read_bytes())
        except OSError:  # exited meanwhile (a shell that handed over to its command)
            continue
    return found


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    log: Path
    sim_url: str
    flower_url: str
    workers: list[str]
    seen: set[Started] = field(default_factory=set)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> set[Started]:
        """Every process of the stack seen so far: orphans are no longer below `pm-arb up`."""
        self.seen |= descendants(self.proc.pid)
        return self.seen


@pytest.fixture
def stack_up(tmp_path: Path) -> Iterator[Up]:
    with fresh_schema("ops_up") as url:
        flush_redis(STACK_REDIS_DB)
        sim_port, flower_port = free_port(), free_port()
        env = point_process_at(
            redis_db=STACK_REDIS_DB, database_url=url, FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH),
            FLOWER_PORT=str(flower_port), **OPERATOR_PUSHOVER,
        )
        env["PATH"] = path_without_the_virtualenv()
        env.pop("VIRTUAL_ENV", None)
        prefixes = [node_name(shlex.split(command)) for command in read_procfile(REPO / "Procfile").values()]
        workers = [f"{prefix}{socket.gethostname()}" for prefix in prefixes if prefix]
        log = tmp_path / "up.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [PM_ARB, "up", "--sim", "--sim-port", str(sim_port)], cwd=REPO, env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        up = Up(proc, log, f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{flower_port}", workers)
        try:
            yield up
        finally:
            leftovers = up.processes()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            for left in leftovers:  # only what this test started, by pid, and only if still the same process
                if left.alive():
                    os.kill(left.pid, signal.SIGKILL)
            flush_redis(STACK_REDIS_DB)


DATABASE_LAYER = ("/sqlalchemy/", "/psycopg2")  # the compiled parts of SQLAlchemy and the driver


def role_of(process: Started) -> str | None:
    """`worker`, `beat` or `flower` for a Celery process of the stack (not the shell honcho starts
    it through, nor honcho itself)."""
    try:
        argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return None
    if "python" not in Path(argv[0]).name or "-A" not in argv:
        return None
    return argv[argv.index("-A") + 2]


def maps_the_database_layer(process: Started) -> bool:
    """Whether the process has imported SQLAlchemy or psycopg2: their shared objects are mapped."""
    maps = Path(f"/proc/{process.pid}/maps").read_text()
    return any(part in maps for part in DATABASE_LAYER)


def answers(url: str, **kw: object) -> int | None:
    try:
        return requests.get(url, timeout=2, **kw).status_code  # type: ignore[arg-type]
    except requests.ConnectionError:
        return None


def test_up_sim_starts_every_process_without_the_virtualenv_and_ctrl_c_stops_them_all(stack_up: Up) -> None:
    up = stack_up

    def workers_answer() -> bool:
        assert up.proc.poll() is None, f"pm-arb up exited early:\n{up.output()}"
        replies = app.control.ping(destination=up.workers, timeout=1.0) or []
        return set(up.workers) <= {host for reply in replies for host in reply}

    wait_for(workers_answer, timeout=90, interval=0.5, what=f"{', '.join(up.workers)} to answer ping")
    assert wait_for(lambda: answers(f"{up.sim_url}/sim/log") == 200, timeout=30, what="the simulator")
    assert wait_for(lambda: answers(up.flower_url, auth=FLOWER_AUTH) == 200, timeout=60, what="Flower")

    def stack_started_alert() -> list[dict]:
        log = requests.get(f"{up.sim_url}/sim/log", params={"kind": "alert"}, timeout=5).json()
        return [e for e in log["entries"] if e["title"] == "pm-arb started"]

    # beat's start alert: asked for by beat, recorded by an ops worker, delivered by an alert consumer
    wait_for(stack_started_alert, timeout=60, interval=0.5, what="the stack-started alert at the simulator")
    children = up.processes()
    # Only workers hold the task modules and the database layer; beat and Flower run without them.
    roles = {child: role_of(child) for child in children}
    workers = [c for c, role in roles.items() if role == "worker"]
    light = {role: c for c, role in roles.items() if role in ("beat", "flower")}
    assert len(workers) >= 6 and set(light) == {"beat", "flower"}, roles
    assert all(maps_the_database_layer(c) for c in workers), "the check cannot see the database layer in a worker"
    assert not [role for role, c in light.items() if maps_the_database_layer(c)], "beat or Flower loaded it"
    environments = started_environments(children, up.proc.pid)
    for secret in OPERATOR_PUSHOVER.values():
        assert not any(secret.encode() in e for e in environments), "an operator Pushover key reached the stack"
    assert any(f"PUSHOVER_USER_KEY={SIM_PUSHOVER_USER_KEY}".encode() in e for e in environments)
    assert any(f"PUSHOVER_API_TOKEN={SIM_PUSHOVER_API_TOKEN}".encode() in e for e in environments)

    os.killpg(up.proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
    wait_for(lambda: up.proc.poll() is not None, timeout=30, what="pm-arb up to exit after Ctrl-C")
    wait_for(lambda: not [c for c in children if c.alive()], timeout=30,
             what="every process of the stack to exit")
    out = up.output()
    assert up.proc.returncode == 130, out  # honcho's answer to SIGINT: the stack was stopped, nothing crashed
    assert "not found" not in out and "rc=127" not in out, out
