"""A backlog is not a loss: the relay leaves a copy still waiting in its queue alone."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.messaging import relay
from tests.integration.messaging.conftest import FAST_LEASE_SECONDS, FAST_MAX_ATTEMPTS
from tests.integration.messaging.helpers import harmless, is_overdue, outbox_row, record
from tests.support.services import REDIS_DB_BACKLOG_IDLE, Services
from tests.support.waiting import wait_for
from workers.publisher import publish, queue_probe, web_publisher

IDLE_DB = REDIS_DB_BACKLOG_IDLE


@pytest.fixture
def idle_broker(services: Services, settings: Settings) -> Iterator[tuple[Celery, redis.Redis]]:
    """A broker nobody consumes, so a published copy stays queued as under a backlog."""
    url = f"{services.redis_url}/{IDLE_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    app = web_publisher(url, url)
    yield app, client
    app.close()
    client.flushdb()
    client.close()


def copies_queued(client: redis.Redis, delivery_id: str) -> int:
    """How many copies of ``delivery_id`` wait in the tenancy queue."""
    return sum(json.loads(raw)["headers"]["id"] == delivery_id for raw in client.lrange("tenancy", 0, -1))


def sweep(provider: DataProvider, app: Celery) -> None:
    """One relay round against ``app``'s broker, with the queue probe."""
    relay.sweep_all(provider, lease_seconds=FAST_LEASE_SECONDS, max_attempts=FAST_MAX_ATTEMPTS,
                    batch=10_000, publish=lambda envelopes: publish(app, envelopes),
                    still_queued=queue_probe(app))


def test_a_queued_copy_is_not_sent_again_but_a_lost_one_is(
        fast_provider: DataProvider, idle_broker: tuple[Celery, redis.Redis]) -> None:
    app, client = idle_broker
    (envelope,) = record(fast_provider, harmless())
    assert publish(app, [envelope]) == 1

    for _ in range(FAST_MAX_ATTEMPTS + 1):  # more rounds than it has attempts: still not dead
        wait_for(lambda: is_overdue(fast_provider, envelope.id), timeout=30, message="lease to pass")
        sweep(fast_provider, app)
        row = outbox_row(fast_provider, envelope.id)
        assert row is not None
        assert (row["attempts"], row["dead_at"]) == (0, None)
        assert copies_queued(client, envelope.id) == 1

    client.flushdb()  # the broker loses it
    wait_for(lambda: is_overdue(fast_provider, envelope.id), timeout=30, message="lease to pass")
    sweep(fast_provider, app)
    row = outbox_row(fast_provider, envelope.id)
    assert row is not None and row["attempts"] == 1
    assert copies_queued(client, envelope.id) == 1
