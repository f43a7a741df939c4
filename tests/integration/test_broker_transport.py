"""The broker transport survives the half-closed channel Celery 5.7 leaves when the broker goes
away mid-BRPOP (adapters/broker.py): on real Redis, closing a channel whose transport was already
torn down is a lost connection, not the AttributeError that ended workers ("Unrecoverable
error") in the Redis-restart chaos scenario."""

from __future__ import annotations

import pytest
from kombu import Connection

import pm_arb_tasks.celery_app  # noqa: F401 - installs the transport for redis://
from pm_arb_tasks.adapters.broker import Transport
from tests.support.env import redis_url

pytestmark = pytest.mark.integration


def test_closing_a_channel_whose_transport_is_gone_is_a_lost_connection() -> None:
    connection = Connection(redis_url(3))
    assert isinstance(connection.transport, Transport)  # what `redis://` means in every process
    channel = connection.default_channel
    channel.qos._delivered["tag"] = None  # a message delivered and not acknowledged yet
    connection._do_close_transport()  # the state `collect()` leaves when the broker vanished mid-BRPOP
    connection.maybe_close_channel(channel)  # what Celery's close does next: kombu alone raises AttributeError
    assert channel.closed
    assert channel.qos._delivered == {"tag": None}  # not put back from here: Redis still holds it as unacked
