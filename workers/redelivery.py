"""Counting a delivery's redeliveries, so a message that kills its worker cannot loop forever.

Tasks run ``acks_late`` with ``task_reject_on_worker_lost``: when the process running a task
dies (SIGKILL, the out-of-memory killer, a crash in a C library while decoding a file), its
message goes back to the queue and comes straight back to the next child, which it may kill
again; Celery sets no limit. kombu marks a restored message ``redelivered``, and the task base
counts each redelivery of a delivery id here (``domain_task`` handlers and the import;
promotions and exports count their own runs and give up after five). Past
``MAX_REDELIVERIES`` the delivery is acknowledged without being run and its failure
recorded on its outbox row: the relay re-sends it after its lease, with backoff, and after
its last attempt it is dead, where operators see it. A redelivery for another reason (a
broker connection lost, a visibility timeout, a worker stopped mid-task) counts too: five
in a day is as good a sign that something is wrong. Once given up, a delivery's later
copies (the relay's) get one run each: their first redelivery is given up.

Nothing here is needed for correctness: when Redis cannot count, the delivery runs.
"""
from __future__ import annotations

import logging
from typing import Any

from redis import Redis, RedisError

from domain.messaging import handling
from domain.messaging.outbox import Envelope

log = logging.getLogger(__name__)

MAX_REDELIVERIES = 5
KEY = "allotment:redeliveries:{}"
KEEP_SECONDS = 86_400  # a count lives a day after the delivery's last redelivery


class RedeliveryCounter:
    """The ``redeliveries`` port of worker processes."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def count(self, delivery_id: str) -> int | None:
        """Count one more redelivery of ``delivery_id``; how many so far (None: Redis could not say)."""
        key = KEY.format(delivery_id)
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, KEEP_SECONDS)
                times, _ = pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("could not count the redeliveries of %s (it runs): %s", delivery_id, exc)
            return None
        return int(times)


def looping(task: Any, message: Envelope) -> bool:
    """True, with the failure recorded on the delivery's outbox row, when ``task`` (bound)
    was handed ``message`` once too often: acknowledge it without running it."""
    times = given_up(task.app.ports.get("redeliveries"), message.id,
                     bool((task.request.delivery_info or {}).get("redelivered")))
    if times is None:
        return False
    log.error("%s: %s redelivered %s times, given up (the relay re-sends it)", task.name, message.id, times)
    handling.note_failure(task.app.provider, message,
                          f"given up after {times} redeliveries: no run of it ever finished "
                          "(its worker died or lost the broker each time)")
    return True


def given_up(counter: RedeliveryCounter | None, delivery_id: str, redelivered: bool) -> int | None:
    """How many times ``delivery_id`` was redelivered, if that is more than ``MAX_REDELIVERIES``
    (the task base then records the failure instead of running it); None otherwise."""
    if not redelivered or counter is None:
        return None
    times = counter.count(delivery_id)
    return times if times is not None and times > MAX_REDELIVERIES else None
