"""The environment `pm-arb up` hands to every process: the virtualenv's commands first on PATH,
and under --sim the simulator's URLs with placeholder Pushover keys, whatever the caller had."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pm_arb_tasks.cli.stack import (
    SIM_PUSHOVER_API_TOKEN,
    SIM_PUSHOVER_USER_KEY,
    SIM_URL_SETTINGS,
    stack_environment,
)

REAL_KEYS = {"PUSHOVER_USER_KEY": "ureal0123456789abcdefghijklmno", "PUSHOVER_API_TOKEN": "areal0123456789abcdefghijkl"}
BIN = str(Path(sys.executable).parent)


def test_the_virtualenv_bin_comes_first_on_path() -> None:
    env = stack_environment({"PATH": "/usr/bin:/bin"})
    assert env["PATH"].split(os.pathsep) == [BIN, "/usr/bin", "/bin"]
    assert stack_environment({})["PATH"] == BIN


def test_sim_points_every_upstream_at_the_simulator_and_never_passes_real_pushover_keys() -> None:
    env = stack_environment({"PATH": "/bin", "PUSHOVER_API_URL": "https://pushover.example", **REAL_KEYS}, 8911)
    assert {name: env[name] for name in SIM_URL_SETTINGS} == dict.fromkeys(SIM_URL_SETTINGS, "http://127.0.0.1:8911")
    assert (env["PUSHOVER_USER_KEY"], env["PUSHOVER_API_TOKEN"]) == (SIM_PUSHOVER_USER_KEY, SIM_PUSHOVER_API_TOKEN)
    assert not set(REAL_KEYS.values()) & set(env.values())


def test_sim_sets_placeholder_keys_when_none_are_configured() -> None:
    env = stack_environment({"PUSHOVER_USER_KEY": "", "PUSHOVER_API_TOKEN": ""}, 8900)
    assert env["PUSHOVER_USER_KEY"] and env["PUSHOVER_API_TOKEN"]  # the simulator refuses empty keys


def test_without_sim_the_configured_hosts_and_keys_are_left_alone() -> None:
    base = {"PATH": "/bin", "PUSHOVER_API_URL": "https://pushover.example", **REAL_KEYS}
    env = stack_environment(base)
    assert {k: v for k, v in env.items() if k != "PATH"} == {k: v for k, v in base.items() if k != "PATH"}
