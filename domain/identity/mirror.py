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

The mirror is used only while it is *live*: subscribed, and loaded after subscribing
(revoked session keys read with SCAN; the store rebuilt from the database first if it
was emptied). When the connection breaks (Redis restarted, the subscription dropped for a
full buffer) it is not live; the caller falls back to reading Redis directly (and to 503
when Redis is unreachable) while the mirror reconnects and reloads, at most once a second.
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
        self._revoked: dict[str, float] = {}  # session id -> when it was learnt (monotonic)
        self._versions: dict[str, str] = {}

    # --- reading ----------------------------------------------------------------------

    def sync(self) -> bool:
        """Apply every change that has arrived; True if the mirror can be trusted now."""
        with self._lock:
            if self._pid != os.getpid():  # a forked worker must not share its parent's socket
                self._drop(reset_pid=True)
            if not self._live and time.monotonic() >= self._next_attempt:
                self._connect()
            if self._live:
                self._drain()
            return self._live

    def is_revoked(self, session_id: str) -> bool:
        """True if the session is revoked (call after ``sync`` returned True)."""
        return session_id in self._revoked

    def version(self, tenant_id: str) -> str | None:
        """The tenant's IAM version if known here (call after ``sync`` returned True)."""
        return self._versions.get(tenant_id)

    def remember_version(self, tenant_id: str, version: str) -> None:
        """Keep a version read from Redis; later changes arrive on the channel."""
        with self._lock:
            if self._live:
                self._versions.setdefault(tenant_id, version)

    # --- keeping current ----------------------------------------------------------------

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
            # Subscribed first, loaded second: nothing published in between is missed.
            self._load()
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
        self._revoked = {}
        for key in self.redis.scan_iter(match=prefix + "*", count=1000):
            text = key.decode() if isinstance(key, bytes) else key
            self._revoked[text[len(prefix):]] = now
        self._versions = {}

    def _drain(self) -> None:
        assert self._pubsub is not None
        try:
            while True:
                message = self._pubsub.get_message(timeout=0.0)
                if message is None:
                    break
                self._apply(message)
        except (RedisError, OSError) as exc:
            log.warning("access mirror lost its subscription (%s); reconnecting", exc)
            self._drop(reset_pid=False)
            self._connect()
            return
        self._expire()

    def _apply(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message":
            return
        data = message["data"]
        parts = (data.decode() if isinstance(data, bytes) else str(data)).split()
        if len(parts) == 2 and parts[0] == "rv":
            self._revoked[parts[1]] = time.monotonic()
        elif len(parts) == 3 and parts[0] == "iam":
            self._versions[parts[1]] = parts[2]

    def _expire(self) -> None:
        # A session revoked longer ago than an access token lives has no usable tokens.
        if len(self._revoked) < 1024:
            return
        horizon = time.monotonic() - self._window
        self._revoked = {sid: at for sid, at in self._revoked.items() if at > horizon}

    def _drop(self, *, reset_pid: bool) -> None:
        self._live = False
        if self._pubsub is not None:
            try:
                # Another process's socket after a fork: forget it without talking on it.
                if reset_pid:
                    self._pubsub.connection = None
                self._pubsub.close()
            except (RedisError, OSError):
                pass
            self._pubsub = None
        if reset_pid:
            self._pid = None
