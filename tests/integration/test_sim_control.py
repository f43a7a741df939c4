"""The simulator's own surface: Pushover replies and faults, control endpoints, the log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from pm_arb_tasks.sim import SimServer, running_sim

pytestmark = pytest.mark.integration
TOKEN, USER = "a" * 30, "u" * 30


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with running_sim(seed=51) as server:
        yield server


def post(sim: SimServer, path: str, **body: object) -> requests.Response:
    return requests.post(f"{sim.url}{path}", json=body, timeout=5)


def test_pushover_accepts_form_posts_and_records_alerts_without_secrets(sim: SimServer) -> None:
    reply = requests.post(
        f"{sim.url}/1/messages.json",
        data={"token": TOKEN, "user": USER, "title": "Trade", "message": "bought 10 YES", "priority": "1"},
        timeout=5,
    )
    assert reply.status_code == 200 and reply.json()["status"] == 1 and len(reply.json()["request"]) == 36
    entry = requests.get(f"{sim.url}/sim/log", params={"kind": "alert"}, timeout=5).json()["entries"][-1]
    assert (entry["title"], entry["message"], entry["priority"]) == ("Trade", "bought 10 YES", 1)
    assert TOKEN not in str(entry) and USER not in str(entry)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": USER, "message": "x"}, "token"),
        ({"token": TOKEN, "message": "x"}, "user"),
        ({"token": TOKEN, "user": USER, "message": ""}, "message"),
        ({"token": TOKEN, "user": USER, "message": "x", "priority": 3}, "priority"),
        ({"token": TOKEN, "user": USER, "message": "x", "priority": 2, "expire": 60}, "retry"),
        ({"token": TOKEN, "user": USER, "message": "x", "priority": 2, "retry": 30}, "expire"),
    ],
)
def test_pushover_rejects_bad_messages_like_the_real_api(sim: SimServer, body: dict, field: str) -> None:
    reply = post(sim, "/1/messages.json", **body)
    assert reply.status_code == 400 and reply.json()[field] == "invalid" and reply.json()["status"] == 0


def test_emergency_priority_gets_a_receipt(sim: SimServer) -> None:
    reply = post(sim, "/1/messages.json", token=TOKEN, user=USER, message="halt", priority=2, retry=30, expire=3600)
    assert reply.status_code == 200 and reply.json()["receipt"]


def test_pushover_faults_answer_n_times_then_recover(sim: SimServer) -> None:
    post(sim, "/sim/fault", service="pushover", status=429, times=2, retry_after=3)
    body = {"token": TOKEN, "user": USER, "message": "x"}
    first, second, third = (post(sim, "/1/messages.json", **body) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "3"


def test_control_validates_its_input(sim: SimServer) -> None:
    assert post(sim, "/sim/jump", symbol="DOGE", pct=1).status_code == 400
    assert post(sim, "/sim/jump", symbol="BTC").status_code == 400
    assert post(sim, "/sim/spot", symbol="BTC", price="-1").status_code == 400
    assert post(sim, "/sim/fault", service="nasdaq").status_code == 400
    assert post(sim, "/sim/settings", nonsense=1).status_code == 400
    assert requests.get(f"{sim.url}/sim/log", params={"since": "x"}, timeout=5).status_code == 400


def test_set_spot_jump_and_resolve(sim: SimServer) -> None:
    assert post(sim, "/sim/spot", symbol="SOL", price=200).json()["spot"]["SOL"] == "200"
    assert post(sim, "/sim/jump", symbol="SOL", pct=-10).json()["spot"]["SOL"] == "180"
    rows = requests.get(f"{sim.url}/sim/markets", params={"symbol": "SOL", "kind": "strike"}, timeout=5).json()
    assert rows and all("Solana" in row["question"] for row in rows)
    resolved = post(sim, "/sim/resolve", condition_id=rows[0]["conditionId"], winner="NO").json()
    assert resolved["closed"] and resolved["winner"] == 1
    row = requests.get(f"{sim.url}/markets", params={"condition_ids": rows[0]["conditionId"]}, timeout=5).json()[0]
    assert row["closed"] and row["outcomePrices"] == '["0", "1"]' and not row["acceptingOrders"]
    token = row["clobTokenIds"].split('"')[1]
    assert requests.get(f"{sim.url}/book", params={"token_id": token}, timeout=5).status_code == 404


def test_a_client_session_keeps_one_connection_across_calls_as_with_the_real_hosts(sim: SimServer) -> None:
    """The simulator keeps connections alive, so latency measured against it holds no TCP
    handshake per call that a deployed worker's session would not pay either."""
    from pm_arb_tasks.adapters.http import make_session, request_json

    session = make_session()
    local_ports = []  # of the connection the session keeps after each call (none if the server closed it)
    for path in ("/api/v3/ticker/price?symbol=BTCUSDT", "/products/BTC-USD/ticker", "/sim/log"):
        request_json(session, "GET", f"{sim.url}{path}")
        pools = session.get_adapter(sim.url).poolmanager.pools  # urllib3's container: keys(), no iteration
        kept = [conn for key in pools.keys() for conn in pools[key].pool.queue if conn is not None and conn.sock]  # noqa: SIM118
        local_ports += [conn.sock.getsockname()[1] for conn in kept]
    assert len(local_ports) == 3 and len(set(local_ports)) == 1, local_ports
