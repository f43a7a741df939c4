"""The Redis broker transport, with one fix: a lost broker connection must not end the worker.

Celery 5.7's consumer, on losing the broker, first `collect()`s the connection and then closes
it. If a BRPOP was in flight, kombu 5.7's `collect()` fails to close the channel (reading the
dead socket raises before the channel is marked closed) yet still tears the transport down; the
close that follows reaches the channel again, its QoS tries to put the delivered-but-unacked
messages back through the transport that no longer exists, and the AttributeError this raises
is "Unrecoverable error": the worker exits (seen in the Redis-restart chaos scenario).

Here a channel whose transport is gone fails that restore with the connection error it is, which
kombu and Celery handle as a lost connection: the worker reconnects, and the messages, still in
Redis's unacked set, come back with the visibility-timeout sweep (invariant 1 makes the
redelivery harmless). `install()` makes it what `redis://` means in this process (celery_app.py
calls it), so broker URLs stay `redis://…` for Flower, `celery control` and the logs.
"""

from __future__ import annotations

from typing import Any

from kombu import transport as kombu_transports
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:  # the transport was torn down under this channel
            raise RedisConnectionError("broker connection already closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    kombu_transports.TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
