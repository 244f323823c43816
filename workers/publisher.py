"""Outbox -> Celery: send recorded envelopes as tasks (task id = delivery id).

The only ``workers`` module the web tier imports. Publishing after commit is best effort
by design: a message lost here (crash, broker down, broker flushed) is still in the
outbox and the relay re-sends it when its lease runs out.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from celery import Celery, group
from kombu import Queue

from config.celery import QUEUES, queue_for_task
from domain.messaging import bus
from domain.messaging.outbox import Envelope

log = logging.getLogger(__name__)


def publish(app: Celery, envelopes: Iterable[Envelope]) -> int:
    """Send each envelope to its handler's queue; return how many were sent."""
    envelopes = list(envelopes)
    if not envelopes:
        return 0
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for envelope in envelopes:
                name = bus.task_name(envelope.handler)
                app.send_task(name, args=[envelope.as_dict()], task_id=envelope.id,
                              queue=queue_for_task(name), producer=producer)
                sent += 1
    except Exception:
        log.warning("publish failed after %d of %d messages; the relay will re-send",
                    sent, len(envelopes), exc_info=True)
    return sent


def web_publisher(broker_url: str, result_backend: str) -> Celery:
    """A light Celery app for processes that only send (the web tier)."""
    app = Celery("allotment-publisher", set_as_current=False)
    app.conf.update(broker_url=broker_url, result_backend=result_backend,
                    task_serializer="json", accept_content=["json"],
                    task_queues=[Queue(q) for q in QUEUES],
                    broker_connection_retry_on_startup=True,
                    broker_connection_max_retries=1)
    return app


def run_group(app: Celery, task: str, argument_lists: list[list[Any]], timeout: float) -> list[Any]:
    """Run ``task`` once per argument list as a Celery group; wait for every result."""
    job = group(app.signature(task, args=args, queue=queue_for_task(task)) for args in argument_lists)
    result = job.apply_async()
    return list(result.get(timeout=timeout, propagate=False))
