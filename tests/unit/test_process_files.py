"""The Procfile, docker-compose.yml, beat schedule and routes agree with each other and DESIGN.md."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from beat_schedule import build_schedule
from pm_arb_tasks.celery_app import QUEUES, TASK_MODULES, app, route_for
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
    app.loader.import_default_modules()
    for module in TASK_MODULES:
        __import__(module)
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
    for name in ("pm_arb.execute.order", "pm_arb.persist.record"):
        task = app.tasks[name]
        assert name in tasks and task.acks_late and task.reject_on_worker_lost
        assert (task.time_limit or app.conf.task_time_limit) < visibility
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
