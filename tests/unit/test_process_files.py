"""The Procfile, docker-compose.yml, beat schedule and routes agree with each other and DESIGN.md."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from beat_schedule import build_schedule
from pm_arb_tasks.celery_app import (
    QUEUES,
    REDELIVERY_MARGIN_SECONDS,
    app,
    check_redelivery,
    default_time_limits,
    import_task_modules,
    redelivery_problems,
    restore_interval,
    route_for,
)
from pm_arb_tasks.cli.stack import read_procfile
from pm_arb_tasks.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DESIGN_PROCESSES = {"beat", "oracle", "markets", "scan", "risk", "execute", "persist", "flower"}


def compose_commands() -> dict[str, str]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return {name: svc["command"] for name, svc in services.items() if name in DESIGN_PROCESSES}


def test_procfile_names_every_process_of_the_design() -> None:
    assert set(read_procfile(ROOT / "Procfile")) == DESIGN_PROCESSES


def test_procfile_and_compose_run_the_same_commands() -> None:
    assert compose_commands() == read_procfile(ROOT / "Procfile")


def test_executor_is_single_and_prefetches_one() -> None:
    args = shlex.split(read_procfile(ROOT / "Procfile")["execute"])
    assert args[args.index("-Q") + 1] == "execute"
    assert args[args.index("--concurrency") + 1] == "1"
    assert args[args.index("--prefetch-multiplier") + 1] == "1"
    for name, command in read_procfile(ROOT / "Procfile").items():
        if name != "execute" and "-Q" in (parts := shlex.split(command)):
            assert "execute" not in parts[parts.index("-Q") + 1].split(","), f"{name} must not consume execute"


def test_every_queue_has_a_consumer_in_the_procfile() -> None:
    consumed: set[str] = set()
    for command in read_procfile(ROOT / "Procfile").values():
        parts = shlex.split(command)
        if "-Q" in parts:
            consumed.update(parts[parts.index("-Q") + 1].split(","))
    assert consumed == set(QUEUES)


def test_compose_redis_keeps_messages() -> None:
    redis_cmd = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["redis"]["command"]
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd


def registered_tasks() -> set[str]:
    import_task_modules(app)
    return {name for name in app.tasks if name.startswith("pm_arb.")}


def test_every_beat_entry_names_a_registered_task_and_expires() -> None:
    tasks = registered_tasks()
    for live in (True, False):
        key = "0x" + "11" * 32
        schedule = build_schedule(Settings(_env_file=None, paper_trading=not live, polymarket_private_key=key))
        for entry_name, entry in schedule.items():
            assert entry["task"] in tasks, f"beat entry {entry_name} names unknown task {entry['task']}"
            assert entry["options"]["expires"] > 0


def test_every_task_routes_to_its_named_queue() -> None:
    for name in registered_tasks():
        queue = route_for(name)
        assert queue in QUEUES
        assert app.amqp.router.route({}, name)["queue"].name == queue


def test_crash_sensitive_tasks_ack_late_within_the_visibility_timeout() -> None:
    tasks = registered_tasks()
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility == Settings(_env_file=None).broker_visibility_timeout_seconds == 30
    for name in ("pm_arb.execute.order", "pm_arb.persist.record", "pm_arb.risk.review"):
        task = app.tasks[name]
        assert name in tasks and task.acks_late and task.reject_on_worker_lost
    late_acked = [app.tasks[name] for name in tasks if app.tasks[name].acks_late]
    for task in late_acked:
        assert (task.time_limit or app.conf.task_time_limit) + REDELIVERY_MARGIN_SECONDS <= visibility, task.name
    check_redelivery(app)  # the same rule, as a worker applies it at start-up
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]


@pytest.mark.parametrize("visibility", [11, 25, 30, 45, 3600])
def test_default_limits_end_before_the_message_could_return(visibility: int) -> None:
    soft, hard = default_time_limits(visibility)
    assert 0 < soft < hard <= min(visibility - REDELIVERY_MARGIN_SECONDS, 25)
    assert 1 <= restore_interval(visibility) <= max(visibility / 10, 1)


def test_redelivery_rules_cover_late_acks_and_retry_countdowns() -> None:
    def task(name: str, **attrs: object) -> SimpleNamespace:
        defaults = {"acks_late": False, "time_limit": None, "autoretry_for": (), "retry_backoff": False,
                    "retry_backoff_max": 600, "default_retry_delay": 180}
        return SimpleNamespace(name=name, **{**defaults, **attrs})

    tasks = [
        task("pm_arb.execute.order", acks_late=True, time_limit=10),
        task("pm_arb.persist.record", acks_late=True, time_limit=10, autoretry_for=(OSError,), retry_backoff=1,
             retry_backoff_max=10),  # waits 10 s unacknowledged, then runs up to 10 s before the ack
        task("pm_arb.ops.retried", autoretry_for=(OSError,), retry_backoff=1, retry_backoff_max=12),  # early ack
        task("pm_arb.ops.slow", time_limit=50),  # acked on receipt: may outrun the timeout
        task("celery.chord_unlock", acks_late=True, time_limit=300),  # not ours
    ]  # fmt: skip
    assert redelivery_problems(tasks, 25, 20) == []  # type: ignore[arg-type]
    assert [(p.task, p.seconds) for p in redelivery_problems(tasks, 24, 19)] == [  # type: ignore[arg-type]
        ("pm_arb.persist.record", 20)
    ]
    assert {p.task for p in redelivery_problems(tasks, 14, 9)} == {  # type: ignore[arg-type]
        "pm_arb.execute.order", "pm_arb.persist.record", "pm_arb.ops.retried"
    }
    without_backoff = [task("pm_arb.persist.x", autoretry_for=(OSError,))]  # Celery's 180 s default delay
    assert [p.seconds for p in redelivery_problems(without_backoff, 30, 25)] == [180]  # type: ignore[arg-type]


def start_up_check(visibility: int) -> subprocess.CompletedProcess[str]:
    """The worker's start-up check in a fresh process: tasks take their limits when they bind to the app."""
    code = "from pm_arb_tasks.celery_app import app, check_redelivery, import_task_modules; " \
        "import_task_modules(app); check_redelivery(app)"
    env = {**os.environ, "BROKER_VISIBILITY_TIMEOUT_SECONDS": str(visibility)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_shortest_visibility_timeout_is_accepted_and_one_less_refused_naming_the_variable() -> None:
    assert start_up_check(25).returncode == 0
    refused = start_up_check(24)
    assert refused.returncode != 0
    assert "BROKER_VISIBILITY_TIMEOUT_SECONDS=24 is too short" in refused.stderr
    assert "pm_arb.persist.record" in refused.stderr and "at least 25" in refused.stderr
