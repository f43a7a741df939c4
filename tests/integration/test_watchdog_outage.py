"""The watchdog during a PostgreSQL outage (cut through a TCP proxy): it still sees a worker die and
tells the operator through Pushover straight away; once the database answers, the outage's alerts
are recorded, the one Pushover already took as sent, so the phone gets it once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pm_arb_tasks.services.alerts import CRITICAL
from pm_arb_tasks.sim.server import SimServer, running_sim
from tests.support.env import flush_redis, fresh_schema, point_process_at
from tests.support.ops import OTHER_QUEUES, PUSHOVER_TOKEN, PUSHOVER_USER, REDIS_DBS, alert_rows, watchdog_pass
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for
from tests.support.workers import Worker, running

pytestmark = pytest.mark.integration
REDIS_DB = REDIS_DBS[0]
DEAD = "Queue execute has no consumer"


@dataclass
class Rig:
    sim: SimServer
    database: TcpProxy  # only this process (the watchdog) reaches PostgreSQL through it
    execute: Worker

    def pushed(self) -> list[tuple[str, int]]:
        """(title, priority) of every message the simulator's Pushover accepted, in order."""
        return [(entry["title"], entry["priority"]) for entry in self.sim.scenario.log("alert")]


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    with running_sim() as sim, fresh_schema("ops_outage") as url:
        flush_redis(REDIS_DB)
        proxy = TcpProxy(5432).start()
        env = point_process_at(
            redis_db=REDIS_DB, database_url=url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
            PUSHOVER_API_URL=sim.url, PUSHOVER_USER_KEY=PUSHOVER_USER, PUSHOVER_API_TOKEN=PUSHOVER_TOKEN,
        )
        direct = {**env, "DATABASE_URL": url}
        execute, others = Worker("execute", "execute", direct), Worker("others", OTHER_QUEUES, direct)
        try:
            with running(execute, others):
                yield Rig(sim, proxy, execute)
        finally:
            proxy.cut()


def test_a_worker_dying_during_a_database_outage_is_alerted_then_recorded_once(rig: Rig) -> None:
    assert watchdog_pass() == [], "a healthy stack raises nothing"

    rig.database.cut()
    rig.execute.kill()
    [dead] = wait_for(watchdog_pass, timeout=30, interval=0.5, what="the watchdog to notice the dead executor")
    assert (dead.priority, dead.title) == (CRITICAL, DEAD)
    assert rig.pushed() == [("Database unreachable", CRITICAL), (DEAD, CRITICAL)]
    assert watchdog_pass() == [], "an ongoing incident must not alert again, database or not"
    assert len(rig.pushed()) == 2

    rig.database.start()
    assert watchdog_pass() == []  # the executor is still dead: nothing new
    rows = [(r.kind, r.priority, r.title, r.delivery) for r in alert_rows()]
    assert rows[0] == ("database_down", CRITICAL, "Database unreachable", "sent")  # recorded as what it was:
    assert rows[1] == ("agent_dead", CRITICAL, DEAD, "sent")  # already sent
    assert [(kind, title) for kind, _, title, _ in rows] == [
        ("database_down", "Database unreachable"),
        ("agent_dead", DEAD),
        ("database_down", "Database reachable again"),
    ]
    wait_for(lambda: ("Database reachable again", 0) in rig.pushed(), timeout=30, what="the recovery note to arrive")
    titles = [title for title, _ in rig.pushed()]
    assert titles.count(DEAD) == titles.count("Database unreachable") == 1, "a held alert was sent a second time"
