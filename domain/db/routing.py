"""Telling every process that a tenant's routing changed (DESIGN §3: "cached, invalidated
when routing changes").

Each process caches routes. ``RedisRoutingChannel`` publishes a change on a Redis channel
and runs one listener thread per process that drops the cached route when a change arrives.
While the listener is not subscribed (starting, or Redis unreachable) the provider caches
nothing, so a change can be missed only by a process that then reads routing afresh.
"""
from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from typing import Protocol

import redis

log = logging.getLogger(__name__)
ALL = "*"


class RoutingChannel(Protocol):
    """Carries routing changes between processes."""

    def announce(self, tenant_id: uuid.UUID | None) -> None:
        """Tell every process that ``tenant_id``'s route (or every route, for None) changed."""

    def listening(self, on_change: Callable[[uuid.UUID | None], None]) -> bool:
        """Make sure this process listens; True while changes are being received."""

    def close(self) -> None:
        """Stop listening (a later ``listening`` starts again)."""


class RedisRoutingChannel:
    """Routing changes over Redis pub/sub, one listener thread per process."""

    def __init__(self, redis_url: str, channel: str = "allotment:routing") -> None:
        self._url, self._channel = redis_url, channel
        self._pid: int | None = None
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def announce(self, tenant_id: uuid.UUID | None) -> None:
        """Publish the change; every listening process drops the route."""
        client = redis.Redis.from_url(self._url)
        try:
            client.publish(self._channel, str(tenant_id) if tenant_id else ALL)
        finally:
            client.close()

    def listening(self, on_change: Callable[[uuid.UUID | None], None]) -> bool:
        """Start this process's listener once (after a fork or ``close``, again); report if subscribed."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._subscribed, self._stop = threading.Event(), threading.Event()
                    threading.Thread(target=self._listen, args=(on_change, self._subscribed, self._stop),
                                     name="routing-listener", daemon=True).start()
        return self._subscribed.is_set()

    def close(self) -> None:
        """Stop this process's listener: within a second while it listens, within the 5 s a
        connection attempt may take otherwise (a later ``listening`` starts another)."""
        with self._lock:
            self._stop.set()
            self._subscribed.clear()
            self._pid = None

    def _listen(self, on_change: Callable[[uuid.UUID | None], None], subscribed: threading.Event,
                stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            client = redis.Redis.from_url(self._url, health_check_interval=10, socket_connect_timeout=5)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._channel)
                pubsub.get_message(timeout=5)  # the subscribe confirmation
                on_change(None)  # whatever changed while we were not listening
                subscribed.set()
                delay = 0.5
                while not stop.is_set():  # a message wakes it at once; the timeout only checks stop
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        data = message["data"].decode()
                        on_change(None if data == ALL else uuid.UUID(data))
            except (redis.RedisError, OSError, ValueError) as exc:
                if not stop.is_set():
                    log.warning("routing listener lost Redis (%s); routes are not cached until it is back",
                                exc)
            finally:
                subscribed.clear()
                pubsub.close()
                client.close()
            stop.wait(delay)
            delay = min(delay * 2, 10.0)
