"""A process-local mirror of the access state: revoked sessions and tenants' IAM versions.

Reading the revocation store and the IAM version from Redis costs a round trip on every
authenticated request. The mirror keeps both in the process instead, kept current by
the changes every writer publishes on one Redis channel (``CHANNEL``):

- ``rv <session id>`` when a session is revoked (``RevocationStore.revoke``),
- ``iam <tenant id> <version>`` when a tenant's permissions change (``PermissionCache``).

There is no listener thread: each request first drains what has arrived on the
subscription socket (a non-blocking poll, no round trip). A writer's PUBLISH is in the
subscriber's socket before the writer's own reply, so a change is applied before the
next request that could follow it is served.

The mirror is used only while it is *live*: subscribed, loaded after subscribing
(revoked session keys read with SCAN; the store rebuilt from the database first if it
was emptied), and proven current within the last second: at most once a second a request
sends a PING on the subscription and applies everything up to its PONG (TCP keeps order,
so every change published before the PING is then applied). A subscription that broke,
was re-established behind our back, or stalls silently (a half-open connection) makes the
mirror not live; the caller then reads Redis directly (503 when Redis is unreachable)
while the mirror reconnects and reloads, at most once a second. So a revocation holds
from the next request on while the subscription is healthy, and within about a second in
every case. ACCESS_MIRROR=false turns the mirror off: every request reads Redis (a rolling
deploy from code that does not publish needs that until every writer publishes).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError

from domain.identity import revocation

log = logging.getLogger(__name__)
CHANNEL = revocation.CHANNEL
_RETRY_SECONDS = 1.0
_HEARTBEAT_SECONDS = 1.0      # the subscription must prove itself (PING -> PONG) this often
_FENCE_TIMEOUT = 2.0
_FENCE = "allotment-mirror-fence"


class AccessMirror:
    """Revoked sessions and IAM versions of this process, fed by pub/sub."""

    def __init__(self, store: revocation.RevocationStore) -> None:
        self.store = store
        self.redis: Redis = store.redis
        self._window = store.window.total_seconds()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._pubsub: PubSub | None = None
        self._live = False
        self._next_attempt = 0.0
        self._heard = 0.0               # last time the subscription was proven current
        self._generation = 0            # bumped by every (re)load
        self._revoked: dict[str, float] = {}
        self._versions: dict[str, str] = {}

    def check(self, session_id: str, tenant_id: str | None) -> tuple[bool, str | None, int] | None:
        """(revoked, version or None, generation), read under the lock after applying every
        change; None when the mirror cannot be trusted (read Redis instead)."""
        with self._lock:
            if self._pid != os.getpid():
                self._drop(reset_pid=True)
            if not self._live and time.monotonic() >= self._next_attempt:
                self._connect()
            if self._live:
                self._drain()
            if not self._live:
                return None
            version = self._versions.get(tenant_id) if tenant_id else None
            return session_id in self._revoked, version, self._generation

    def remember_version(self, tenant_id: str, version: str, generation: int) -> None:
        """Keep a version read from Redis, unless the mirror reloaded since (``generation``):
        it may have been read before a change this process then missed."""
        with self._lock:
            if self._live and generation == self._generation:
                self._versions.setdefault(tenant_id, version)

    def _connect(self) -> None:
        self._drop(reset_pid=False)
        self._pid = os.getpid()
        try:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=False)
            pubsub.subscribe(CHANNEL)
            confirmed = pubsub.get_message(timeout=2.0)
            if not confirmed or confirmed.get("type") != "subscribe":
                raise RedisError("no subscription confirmation")
            self._pubsub = pubsub
            self._load()
            self._heard = time.monotonic()
            self._generation += 1
            self._live = True
        except (RedisError, revocation.RevocationUnavailable, OSError) as exc:
            log.warning("access mirror cannot subscribe (%s); reading Redis per request", exc)
            self._drop(reset_pid=False)
            self._next_attempt = time.monotonic() + _RETRY_SECONDS

    def _load(self) -> None:
        if not self.redis.exists(revocation.READY_KEY):
            self.store.rebuild()
        now = time.monotonic()
        prefix = revocation.session_key("")
        loaded: dict[str, float] = {}
        for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            text = key.decode() if isinstance(key, bytes) else key
            loaded[text[len(prefix):]] = now
        if not self.redis.exists(revocation.READY_KEY):
            raise revocation.RevocationUnavailable("revocation store emptied while loading")
        # A revocation is never undone: keep what this process already knew (a flush may
        # have removed the keys), and swap the dicts in one assignment (readers never see
        # a half-loaded set).
        loaded.update(self._revoked)
        self._revoked, self._versions = loaded, {}

    def _drain(self) -> None:
        assert self._pubsub is not None
        try:
            self._read_available()
            if time.monotonic() - self._heard >= _HEARTBEAT_SECONDS:
                self._fence()
        except (RedisError, OSError) as exc:
            log.warning("access mirror lost its subscription (%s); reconnecting", exc)
            self._drop(reset_pid=False)
            self._connect()
            return
        self._expire()

    def _read_available(self) -> None:
        assert self._pubsub is not None
        while True:
            message = self._pubsub.get_message(timeout=0.0)
            if message is not None:
                self._apply(message)
                continue
            # None is also what redis-py returns for its own health-check PONG: stop only
            # when nothing at all is left to read.
            conn = self._pubsub.connection
            if conn is None or not conn.can_read(timeout=0):
                return

    def _fence(self) -> None:
        """PING on the subscription and apply everything up to its PONG: TCP keeps order,
        so every change published before the PING has then been applied."""
        assert self._pubsub is not None
        self._pubsub.ping(_FENCE)
        deadline = time.monotonic() + _FENCE_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RedisError("the subscription did not answer PING")
            message = self._pubsub.get_message(timeout=left)
            if message is None:
                continue
            data = message.get("data")
            text = data.decode() if isinstance(data, bytes) else data
            if message.get("type") == "pong" and text == _FENCE:
                self._heard = time.monotonic()
                return
            self._apply(message)

    def _apply(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("subscribe", "unsubscribe"):
            # redis-py re-subscribed on its own after a reconnect: changes may be lost.
            raise RedisError("subscription was re-established; reloading")
        if kind != "message":
            return
        data = message["data"]
        try:
            parts = (data.decode() if isinstance(data, bytes) else str(data)).split()
        except UnicodeDecodeError:
            log.warning("access mirror ignored an undecodable message")
            return
        if len(parts) == 2 and parts[0] == "rv":
            self._revoked[parts[1]] = time.monotonic()
        elif len(parts) == 3 and parts[0] == "iam":
            self._versions[parts[1]] = parts[2]

    def _expire(self) -> None:
        if len(self._revoked) < 1024:
            return
        horizon = time.monotonic() - self._window
        self._revoked = {sid: at for sid, at in self._revoked.items() if at > horizon}

    def _drop(self, *, reset_pid: bool) -> None:
        self._live = False
        if self._pubsub is not None:
            try:
                if reset_pid:
                    self._pubsub.connection = None
                self._pubsub.close()
            except (RedisError, OSError):
                pass
            self._pubsub = None
        if reset_pid:
            self._pid = None
