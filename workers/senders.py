"""Waking the notifications sending stage (``domain.notifications.sending``).

A handler that recorded emails calls the ``wake_sender`` port. At most one wake-up is in
flight at a time: a Redis flag set with ``SET NX`` and a short life sends one ``send_emails``
task; a running sender renews the flag before each batch, and clears it before its last
look for work, so an email recorded after that look wakes a new one, and one recorded
before it is found by it. A sender that died (or a wake-up lost) stops renewing the flag:
within ``FLAG_SECONDS`` the next email wakes another.
Senders that claim a full batch wake one more, so both children of the pool share a burst.
Nothing here is needed for correctness: beat's ``email-sender`` job wakes a sender whenever
emails are due, so a lost wake-up (broker flushed, Redis down) only delays them.
"""
from __future__ import annotations

import logging

from celery import Celery
from redis import Redis, RedisError

log = logging.getLogger(__name__)

SEND_TASK = "tasks.notifications.send_emails"
FLAG = "allotment:notifications:sender-awake"
FLAG_SECONDS = 5  # how long a sender that stopped renewing the flag (it died) holds off the next


class SenderWaker:
    """The ``wake_sender`` port of worker processes."""

    def __init__(self, app: Celery, redis: Redis) -> None:
        self._app = app
        self._redis = redis

    def __call__(self) -> None:
        """Wake a sender unless one is awake (or about to be)."""
        try:
            if self._redis.set(FLAG, "1", nx=True, ex=FLAG_SECONDS):
                self.another()
        except (RedisError, OSError) as exc:
            log.warning("could not wake the email sender (beat's sweep will): %s", exc)

    def another(self) -> None:
        """Wake one more sender, flag or not."""
        try:
            # No result wanted: otherwise send_task subscribes to it on a Redis result backend.
            self._app.send_task(SEND_TASK, ignore_result=True)
        except Exception as exc:  # noqa: BLE001 - each transport raises its own; beat's sweep follows up
            log.warning("could not wake the email sender (beat's sweep will): %s", exc)

    def renew(self) -> None:
        """Say a sender is (still) awake: the flag lives ``FLAG_SECONDS`` more."""
        try:
            self._redis.set(FLAG, "1", ex=FLAG_SECONDS)
        except (RedisError, OSError) as exc:  # at worst a second sender is woken: harmless
            log.warning("could not renew the email sender's flag: %s", exc)

    def clear(self) -> None:
        """Forget that a sender is awake (the caller looks for work once more after this)."""
        try:
            self._redis.delete(FLAG)
        except (RedisError, OSError) as exc:  # the flag expires by itself
            log.warning("could not clear the email sender's flag: %s", exc)
