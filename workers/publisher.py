"""Outbox -> Celery: send recorded envelopes as tasks (task id = delivery id).

The only ``workers`` module the web tier imports. Publishing after commit is best effort
by design: a message lost here (crash, broker down, broker flushed) is still in the
outbox and the relay re-sends it when its lease runs out.
"""
from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import redis
from celery import Celery, group
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from kombu import Queue
from kombu.utils import json as kombu_json
from redis.backoff import ConstantBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from config.celery import QUEUES, queue_for_task
from domain.held_redis import HeldRedis
from domain.messaging import bus
from domain.messaging.outbox import Envelope

log = logging.getLogger(__name__)
SENT_AT_HEADER = "allotment_sent_at"
# A broker hiccup is retried briefly; past that the relay re-sends from the outbox.
_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# How often run_group looks for finished tasks while its window is full.
_POLL_SECONDS = 0.02


def publish(app: Celery, envelopes: Iterable[Envelope]) -> int:
    """Send each envelope to its handler's queue; return how many were sent.

    This is on the request's hot path, so it skips ``send_task``'s generic machinery: the
    Celery message is built with ``amqp.as_task_v2`` and published straight to the queue
    through the default exchange (no routing table or binding lookup per send). On a Redis
    broker it goes further (``_RedisSender``): the message kombu would write is pushed with
    one LPUSH on a kept connection. A worker cannot tell the difference.
    """
    envelopes = list(envelopes)
    if not envelopes:
        return 0
    sender = _redis_sender(app)
    if sender is not None:
        return sender.send([_task_message(app, envelope) for envelope in envelopes])
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for envelope in envelopes:
                queue, message = _task_message(app, envelope)
                producer.publish(message.body, exchange="", routing_key=queue,
                                 headers=message.headers, serializer="json",
                                 retry=True, retry_policy=_RETRY, **message.properties)
                sent += 1
    except Exception:  # the outbox row survives; the relay will re-send it
        log.warning("publish failed after %d of %d messages; the relay will re-send",
                    sent, len(envelopes), exc_info=True)
    return sent


def _task_message(app: Celery, envelope: Envelope) -> tuple[str, Any]:
    """The envelope's queue and Celery task message (task id = delivery id)."""
    name = bus.task_name(envelope.handler)
    message = app.amqp.as_task_v2(
        envelope.id, name, args=[envelope.as_dict()], kwargs={},
        # What Flower and logs show; also spares Celery a repr of the payload.
        argsrepr=f"{envelope.type} tenant={envelope.tenant_id}", kwargsrepr="{}")
    message.headers[SENT_AT_HEADER] = envelope.sent_at  # a fresh dict per message
    without_result_override(message.headers)
    return queue_for_task(name), message


def without_result_override(headers: dict[str, Any]) -> None:
    """Leave the task's own ``ignore_result`` to decide whether it keeps a result.

    ``as_task_v2`` writes ``ignore_result: False`` into every message, and a worker takes a
    message's value over the task's: each domain task (declared ``ignore_result=True``, the
    inbox and outbox being its record) would write its STARTED state and its result to the
    result backend, two writes and a day-long key per message. Without the header the
    task's declaration holds; a promotion or an import still keeps its progress and result.
    """
    headers.pop("ignore_result", None)


# Transport options that change what or where kombu's Redis transport writes; with any of
# them set, messages go through kombu (visibility_timeout and the like only concern consumers).
_LAYOUT_OPTIONS = {"global_keyprefix", "sep", "priority_steps", "queue_order_strategy"}


class _RedisSender:
    """Writes Celery task messages to Redis as kombu's Redis transport does, cheaper.

    kombu builds a new Redis client (and its table of response callbacks) for every
    message it publishes, and wraps each send in its producer pool, retry and routing
    layers: several times the cost of the LPUSH itself. This sends one message on a
    connection its thread holds (``domain.held_redis``), a batch through one pooled client,
    and writes the same JSON: the message kombu's
    ``Producer.publish`` followed by the transport's ``basic_publish`` would write
    (tests/integration/messaging/test_publisher.py holds the two side by side). A broker
    error is retried once; after that the relay re-sends from the outbox.
    """

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2,
            retry=Retry(ConstantBackoff(0.2), 1), retry_on_error=[RedisConnectionError, RedisTimeoutError])
        # One message (a request's, a task's) goes on the thread's own connection.
        self._held = HeldRedis(url, socket_timeout=5, socket_connect_timeout=2)

    def send(self, messages: list[tuple[str, Any]]) -> int:
        """LPUSH each message onto its queue, all in one round trip; how many were sent."""
        try:
            if len(messages) == 1:
                queue, message = messages[0]
                self._held.execute("LPUSH", queue, _wire(queue, message))
            else:
                with self._client.pipeline(transaction=False) as pipe:
                    for queue, message in messages:
                        pipe.lpush(queue, _wire(queue, message))
                    pipe.execute()
        except Exception:  # the outbox rows survive; the relay will re-send them
            log.warning("publish of %d messages failed; the relay will re-send", len(messages),
                        exc_info=True)
            return 0
        return len(messages)


def _wire(queue: str, message: Any) -> str:
    """What kombu's Redis transport stores for ``message`` published to ``queue`` through
    the default exchange: JSON body (base64), persistent, priority 0, a fresh delivery tag."""
    body = base64.b64encode(kombu_json.dumps(message.body).encode()).decode()
    return kombu_json.dumps({
        "body": body, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": message.headers,
        "properties": {**message.properties, "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                       "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
    })


_senders: weakref.WeakKeyDictionary[Celery, _RedisSender | None] = weakref.WeakKeyDictionary()
_senders_lock = threading.Lock()


def _redis_sender(app: Celery) -> _RedisSender | None:
    """The app's ``_RedisSender``; None unless its broker is one plain Redis URL (no
    failover list, no TLS options of kombu's own, no key layout options)."""
    try:
        return _senders[app]
    except KeyError:
        pass
    with _senders_lock:
        if app not in _senders:
            url = app.conf.broker_url or ""
            options = set(app.conf.broker_transport_options or {})
            plain = (url.partition("://")[0] in ("redis", "rediss") and ";" not in url
                     and not app.conf.broker_use_ssl and not options & _LAYOUT_OPTIONS)
            _senders[app] = _RedisSender(url) if plain else None
        return _senders[app]


def queue_probe(app: Celery) -> Callable[[str, float], bool]:
    """For the relay: is the copy of a handler's message sent at ``sent_at`` still queued?

    Celery's Redis queues are first in, first out, so if the oldest message waiting in the
    handler's queue was sent no later than that copy, the copy is still behind it. One
    LINDEX per queue per sweep. On other brokers, or a message without our header, the
    answer is "no" and the relay falls back to re-sending on lease expiry.
    """
    oldest: dict[str, float | None] = {}

    def still_queued(handler: str, sent_at: float) -> bool:
        queue = queue_for_task(bus.task_name(handler))
        if queue not in oldest:
            oldest[queue] = _oldest_sent_at(app, queue)
        first = oldest[queue]
        return first is not None and first <= sent_at

    return still_queued


def queue_stats(app: Celery, queues: Iterable[str]) -> dict[str, tuple[int, float | None]]:
    """Per queue: messages waiting, and when the oldest of them was sent (Redis brokers)."""
    with app.connection_for_read() as connection:
        if connection.transport.driver_type != "redis":
            return {}
        client = connection.default_channel.client
        return {queue: (int(client.llen(queue)), _sent_at(client.lindex(queue, -1))) for queue in queues}


def _oldest_sent_at(app: Celery, queue: str) -> float | None:
    with app.connection_for_read() as connection:
        if connection.transport.driver_type != "redis":
            return None
        return _sent_at(connection.default_channel.client.lindex(queue, -1))


def _sent_at(raw: bytes | None) -> float | None:
    # Celery's consumers pop from the tail of a queue's list: index -1 is the oldest message.
    if raw is None:
        return None
    value = json.loads(raw).get("headers", {}).get(SENT_AT_HEADER)
    return float(value) if value is not None else None


def web_publisher(broker_url: str, result_backend: str) -> Celery:
    """A light Celery app for processes that only send (the web tier)."""
    app = Celery("allotment-publisher", set_as_current=False)
    app.conf.update(broker_url=broker_url, result_backend=result_backend,
                    task_serializer="json", accept_content=["json"],
                    task_queues=[Queue(q) for q in QUEUES],
                    broker_connection_retry_on_startup=True,
                    broker_connection_max_retries=1)
    return app


def run_group(app: Celery, task: str, argument_lists: list[list[Any]], timeout: float,
              limit: int | None = None) -> list[Any]:
    """Run ``task`` once per argument list as a Celery group; wait for every result.

    With ``limit``, the group is released through a window: at most ``limit`` of its
    tasks are sent and not yet finished at any moment, and each result that arrives lets
    the next task go. So no more than ``limit`` run at once however many workers consume
    the queue, and a slow task holds up one slot, not a whole wave. Each task is still one
    Celery task with its own result (Flower, the result backend), in argument order here.
    What did not finish within ``timeout`` seconds is a ``TimeoutError`` in its place; a
    task not yet sent by then is never sent.
    """
    signatures = [app.signature(task, args=args, queue=queue_for_task(task)) for args in argument_lists]
    if limit is None or limit >= len(signatures):
        return _run_whole(group(signatures), timeout)
    deadline = time.monotonic() + timeout
    waiting = deque(range(len(signatures)))
    running: dict[int, AsyncResult] = {}
    results: list[Any] = [CeleryTimeoutError(f"not sent within {timeout}s")] * len(signatures)
    while (waiting or running) and time.monotonic() < deadline:
        while waiting and len(running) < limit:
            index = waiting.popleft()
            running[index] = signatures[index].apply_async()
        finished = [index for index, result in running.items() if result.ready()]
        for index in finished:
            results[index] = running.pop(index).result
        if running and not finished:
            _wait_a_little(next(iter(running.values())))
    for index in running:
        results[index] = CeleryTimeoutError(f"not finished within {timeout}s")
    return results


def _wait_a_little(result: AsyncResult) -> None:
    """Wait up to ``_POLL_SECONDS`` on one running task.

    Waiting through ``get`` rather than sleeping also reads what the result backend pushed
    meanwhile (Redis publishes every state change to the sender), so a long run does not
    pile those messages up unread; the others' results are then read with ``ready()``.
    """
    with contextlib.suppress(CeleryTimeoutError):
        result.get(timeout=_POLL_SECONDS, interval=_POLL_SECONDS, propagate=False)


def _run_whole(job: group, timeout: float) -> list[Any]:
    result = job.apply_async()
    try:
        return list(result.get(timeout=timeout, propagate=False))
    except CeleryTimeoutError:
        # Keep what finished; report the rest as unfinished instead of losing everything.
        return [r.result if r.ready() else CeleryTimeoutError(f"not finished within {timeout}s")
                for r in result.results]
