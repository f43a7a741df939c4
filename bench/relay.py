"""The bare Redis floor: the same hops as tick-to-order, as LPUSH/BRPOP between plain processes.

Four stage processes (poll, scan, risk, execute) each BRPOP their own list and LPUSH the message
to the next stage's list. The poll stage stamps `t0` when it takes the driver's message, the
execute stage stamps `at`: three cross-process hops in between, as between the oracle poll and
the venue call. `python -m bench.relay --url ... --stage N` runs one stage.
"""

from __future__ import annotations

import argparse
import json
import time

import redis

STAGES = ("poll", "scan", "risk", "execute")
KEY = "bench:relay:{stage}"
DONE = "bench:relay:done"


def stage_key(index: int) -> str:
    return KEY.format(stage=STAGES[index]) if index < len(STAGES) else DONE


def run_stage(url: str, index: int) -> None:
    """Forward messages from this stage's list to the next one, until the process is terminated."""
    client = redis.Redis.from_url(url, socket_timeout=60)
    source, target = stage_key(index), stage_key(index + 1)
    while True:
        found = client.brpop([source], timeout=5)
        if found is None:
            continue
        message = json.loads(found[1])
        if index == 0:
            message["t0"] = time.time()
        if index == len(STAGES) - 1:
            message["at"] = time.time()
        client.lpush(target, json.dumps(message))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--stage", type=int, required=True, choices=range(len(STAGES)))
    args = parser.parse_args()
    run_stage(args.url, args.stage)


if __name__ == "__main__":
    main()
