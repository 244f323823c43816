"""The revocation store: which sessions are cut off, readable in one Redis round trip.

Access tokens are short-lived JWTs checked without the database, so a signed-out or
cut-off session must be refused by something every process consults on every request.
That is a Redis key per revoked session, kept for the longest an access token can live
(after that its tokens are expired anyway; refresh tokens are checked against the
database). A web request reads its session's key together with ``READY_KEY`` in the same
MGET as the IAM version key (web.auth).

Redis keeps nothing on disk here, so the store can be emptied (a flush, a restart).
``READY_KEY`` says the keys are complete: when it is missing, the store is rebuilt from
the database (sessions revoked within the window) before any token is accepted. When
Redis cannot be reached, ``RevocationUnavailable`` is raised and access is refused.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError

from domain.db.base import utcnow

READY_KEY = "allotment:revocations:ready"
# Every change to access (a revoked session, a tenant's new IAM version) is also published
# here, for the processes that mirror the state (domain.identity.mirror).
CHANNEL = "allotment:access-changes"
_PREFIX = "allotment:revoked:"
# Access tokens are checked against the clock of another process: keep keys a little
# longer than a token can live.
SKEW = timedelta(seconds=60)


class RevocationUnavailable(Exception):
    """The revocation store cannot be reached: refuse access rather than grant it."""


def session_key(session_id: str | uuid.UUID) -> str:
    """The key that marks ``session_id`` revoked."""
    return f"{_PREFIX}{session_id}"


class RevocationStore:
    """Revoked session ids in Redis, rebuilt from the database when emptied."""

    def __init__(self, redis: Redis, token_lifetime: timedelta,
                 load_revoked: Callable[[datetime], Iterable[uuid.UUID]]) -> None:
        self.redis = redis
        self.window = token_lifetime + SKEW
        self._load_revoked = load_revoked

    def revoke(self, session_ids: Sequence[uuid.UUID]) -> None:
        """Refuse every token of these sessions from now on, in every process."""
        if not session_ids:
            return
        seconds = int(self.window.total_seconds())
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for sid in session_ids:
                    pipe.set(session_key(sid), "1", ex=seconds)
                    pipe.publish(CHANNEL, f"rv {sid}")
                pipe.execute()
        except RedisError as exc:
            raise RevocationUnavailable(str(exc)) from exc

    def keys(self, session_id: str) -> list[str]:
        """The keys ``verdict`` reads, for a caller that batches them with its own."""
        return [READY_KEY, session_key(session_id)]

    def verdict(self, values: Sequence[bytes | str | None]) -> bool:
        """True if revoked, from the values of ``keys`` (trust it only when ``is_ready``)."""
        return values[1] is not None

    def is_ready(self, values: Sequence[bytes | str | None]) -> bool:
        """False if the store was emptied and must be rebuilt before it is trusted."""
        return values[0] is not None

    def rebuild(self) -> int:
        """Reload the sessions revoked within the window from the database; mark ready."""
        revoked = list(self._load_revoked(utcnow() - self.window))
        seconds = int(self.window.total_seconds())
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for sid in revoked:
                    pipe.set(session_key(sid), "1", ex=seconds)
                pipe.set(READY_KEY, "1")
                pipe.execute()
        except RedisError as exc:
            raise RevocationUnavailable(str(exc)) from exc
        return len(revoked)

    def read(self, session_id: str | uuid.UUID,
             extra_keys: Sequence[str] = ()) -> tuple[bool, list[bytes | str | None]]:
        """(revoked, values of ``extra_keys``) in one MGET, rebuilding an emptied store first."""
        keys = self.keys(str(session_id)) + list(extra_keys)
        try:
            values = self.redis.mget(keys)
            if not self.is_ready(values):
                self.rebuild()
                values = self.redis.mget(keys)
        except RedisError as exc:
            raise RevocationUnavailable(str(exc)) from exc
        return self.verdict(values), list(values[2:])
