"""Invariant 6: generated malformed payloads, served by the simulator's fault knobs to every adapter
through the entry point its worker calls, crash nothing and are each logged, once.

CI serves PMARB_MALFORMED_EXAMPLES cases per adapter (default 50), the same ones on every run so
that CI's verdict is about the change, not the draw; PMARB_MALFORMED_RANDOM=1 draws new ones (a
bug hunt). `make chaos` serves 10,000 in all and counts instead of stopping at the first failure
(chaos/payloads.py holds both halves).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.harness import ChaosRedis, free_port
from chaos.payloads import ADAPTERS, Served, fuzz_environment

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")]
EXAMPLES = int(os.environ.get("PMARB_MALFORMED_EXAMPLES", "50"))
RANDOM = os.environ.get("PMARB_MALFORMED_RANDOM") == "1"


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, dict[str, Any]]]:
    work = tmp_path_factory.mktemp("malformed")
    server = ChaosRedis(free_port(), Path(work) / "redis")
    server.start()
    try:
        with fuzz_environment(server.url(1), Path(work)) as found:
            yield found
    finally:
        server.stop()


@pytest.mark.parametrize("adapter", ADAPTERS)
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=not RANDOM
)
@given(data=st.data())
def test_a_bad_reply_is_survived_and_logged_once(
    fuzz: tuple[Served, dict[str, Any]], adapter: str, data: st.DataObject
) -> None:
    served, strategies = fuzz
    case = data.draw(strategies[adapter], label="case")
    outcome = served.call(case)
    assert outcome.crashed is None, f"{case.describe()} escaped the entry point: {outcome.crashed}"
    assert outcome.logged, f"{case.describe()} was accepted without a log line"
    assert not outcome.repeated, f"{case.describe()} logged {outcome.repeated[0]} more than once per bad reply"
