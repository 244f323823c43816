"""The publisher's Redis fast path writes the message kombu would write, on a real Redis.

Each test sends to a queue of its own (a fresh name no worker consumes), so the messages
read back are the ones the test wrote.
"""
from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from domain.messaging.outbox import Envelope
from workers import publisher as publishing
from workers.publisher import SENT_AT_HEADER, publish, web_publisher


def envelope(**changes: Any) -> Envelope:
    """A provisioning command as the signup records it."""
    delivery = str(uuid.uuid4())
    return Envelope(**{
        "id": delivery, "event_id": delivery, "type": "tenancy.ProvisionTenant", "version": 1,
        "handler": "tenancy.provision_tenant",
        "payload": {"signup_id": str(uuid.uuid4()), "tenant_id": str(uuid.uuid4())},
        "origin": "management", "tenant_id": str(uuid.uuid4()), "correlation_id": uuid.uuid4().hex,
        "sent_at": time.time(), **changes})


@pytest.fixture
def queue(broker_redis: redis.Redis) -> Iterator[str]:
    """A queue name nobody else uses, removed afterwards."""
    name = f"test-publisher-{uuid.uuid4().hex}"
    yield name
    broker_redis.delete(name)


def publisher_message(app: Celery, sent: Envelope) -> tuple[str, Any]:
    """The queue and Celery message ``publish`` builds for ``sent``."""
    return publishing._task_message(app, sent)


def kombu_wrote(app: Celery, broker_redis: redis.Redis, queue: str, message: Any) -> dict[str, Any]:
    """What kombu's producer stores for ``message`` sent to ``queue`` the way ``publish``
    sent it before the fast path (default exchange, JSON)."""
    with app.producer_or_acquire() as producer:
        producer.publish(message.body, exchange="", routing_key=queue, headers=message.headers,
                         serializer="json", **message.properties)
    raw = broker_redis.rpop(queue)
    assert raw is not None
    return json.loads(raw)  # type: ignore[no-any-return]


def fast_path_wrote(app: Celery, broker_redis: redis.Redis, queue: str, message: Any) -> dict[str, Any]:
    """What the fast path stores for the same message."""
    sender = publishing._redis_sender(app)
    assert sender is not None
    assert sender.send([(queue, message)]) == 1
    raw = broker_redis.rpop(queue)
    assert raw is not None
    return json.loads(raw)  # type: ignore[no-any-return]


def without_delivery_tag(message: dict[str, Any]) -> dict[str, Any]:
    """The message minus its delivery tag (a fresh uuid per send, whoever sends)."""
    properties = {k: v for k, v in message["properties"].items() if k != "delivery_tag"}
    return {**message, "properties": properties}


@pytest.mark.parametrize("payload", [
    {"signup_id": str(uuid.uuid4()), "tenant_id": str(uuid.uuid4())},
    {"title": "Grüße, \"quotes\" and \\ backslashes", "nested": {"list": [1, 2.5, None, True]}},
], ids=["provisioning", "unicode and nesting"])
def test_the_fast_path_stores_what_kombu_stores(publisher: Celery, broker_redis: redis.Redis, queue: str,
                                                payload: dict[str, Any]) -> None:
    _, message = publisher_message(publisher, envelope(payload=payload))
    ours = fast_path_wrote(publisher, broker_redis, queue, message)
    theirs = kombu_wrote(publisher, broker_redis, queue, message)
    assert without_delivery_tag(ours) == without_delivery_tag(theirs)
    assert ours["properties"]["delivery_tag"] != theirs["properties"]["delivery_tag"]
    # The body is the task's arguments: the envelope, as the handler will read it.
    args, kwargs, _ = json.loads(base64.b64decode(ours["body"]))
    assert (args[0]["payload"], kwargs) == (payload, {})


def test_several_messages_go_in_order_in_one_batch(publisher: Celery, broker_redis: redis.Redis,
                                                   queue: str) -> None:
    sender = publishing._redis_sender(publisher)
    assert sender is not None
    sent = [envelope() for _ in range(3)]
    assert sender.send([(queue, publisher_message(publisher, e)[1]) for e in sent]) == 3
    ids = [json.loads(raw)["headers"]["id"] for raw in reversed(broker_redis.lrange(queue, 0, -1))]
    assert ids == [e.id for e in sent]  # consumers pop from the tail: first sent, first out


def test_publish_goes_to_the_handlers_queue_with_the_delivery_as_task_id(
        publisher: Celery, broker_redis: redis.Redis, queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Routed to this test's queue so no worker of the session takes the message first.
    monkeypatch.setattr(publishing, "queue_for_task", lambda name: queue)
    sent = envelope()
    assert publish(publisher, [sent]) == 1
    stored = json.loads(broker_redis.rpop(queue) or b"{}")
    assert stored["headers"]["id"] == sent.id
    assert stored["headers"]["task"] == "tasks.tenancy.provision_tenant"
    assert stored["headers"][SENT_AT_HEADER] == sent.sent_at


def test_an_unreachable_broker_sends_nothing_and_raises_nothing() -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused
    app = web_publisher(dead, dead)
    try:
        assert publish(app, [envelope()]) == 0  # the outbox row stays; the relay re-sends it
    finally:
        app.close()


@pytest.mark.parametrize(("url", "options", "fast"), [
    ("redis://127.0.0.1:6379/0", {}, True),
    ("redis://127.0.0.1:6379/0", {"visibility_timeout": 3600}, True),
    ("redis://127.0.0.1:6379/0", {"global_keyprefix": "tenant-a:"}, False),
    ("redis://a:6379/0;redis://b:6379/0", {}, False),
    ("amqp://guest:guest@127.0.0.1:5672//", {}, False),
], ids=["redis", "consumer-only option", "key prefix", "failover list", "rabbitmq"])
def test_the_fast_path_is_taken_only_for_one_plain_redis(url: str, options: dict[str, Any],
                                                           fast: bool) -> None:
    app = web_publisher(url, "redis://127.0.0.1:6379/1")
    app.conf.broker_transport_options = options
    try:
        assert (publishing._redis_sender(app) is not None) is fast
    finally:
        app.close()
