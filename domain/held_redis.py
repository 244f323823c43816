"""Redis commands on a connection each thread holds, for the web tier's hot path.

A redis-py client borrows a connection from its pool for every command and gives it back,
with its retry, observability and pool bookkeeping around each: about 100 µs of CPU per
command here, against 60 µs for the same command on a connection the caller keeps (the
socket's send and receive are 45 of those). The sign-up request makes two commands (its
rate limits' script and the LPUSH of its message), so the difference is a tenth of its
CPU. ``HeldRedis`` keeps one connection per thread (and per process: a forked child
makes its own) and sends each command straight on it.

A connection error or timeout drops the connection and the command is sent once more on
a new one; a second failure is the caller's (the rate limits count in memory, the
publisher leaves the message to the relay). A command may therefore run twice when its
answer, not its request, was lost, as with redis-py's own retry.
"""
from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.maint_notifications import MaintNotificationsConfig


class HeldRedis:
    """Sends commands on the calling thread's own connection to the Redis at ``url``."""

    def __init__(self, url: str, *, socket_timeout: float, socket_connect_timeout: float) -> None:
        pool = redis.ConnectionPool.from_url(url, socket_timeout=socket_timeout,
                                             socket_connect_timeout=socket_connect_timeout)
        # The pool only parses the URL (scheme, TLS, database, credentials); it lends nothing.
        # Without the pool's maintenance-notification handler a connection is in no reference
        # cycle: it is freed, and its socket closed, as soon as its thread ends.
        self._connection_class = pool.connection_class
        self._connection_kwargs = {**pool.connection_kwargs,
                                   "maint_notifications_config": MaintNotificationsConfig(enabled=False)}
        self._connection_kwargs.pop("maint_notifications_pool_handler", None)
        self._local = threading.local()

    def execute(self, *args: Any) -> Any:
        """Run one command; its raw answer (bytes, int, list)."""
        connection = self._connection()
        try:
            return self._run(connection, args)
        except (RedisConnectionError, RedisTimeoutError):
            pass  # the connection dropped its socket: the next send connects afresh
        return self._run(connection, args)

    def run_script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """``EVALSHA`` of ``script``; ``EVAL`` once when Redis does not hold it (a restart, a
        ``SCRIPT FLUSH``), which loads it for the next call."""
        try:
            return self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.execute("EVAL", script.source, len(keys), *keys, *args)

    def close(self) -> None:
        """Drop this thread's connection; the next command opens a new one."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.disconnect()

    def _connection(self) -> redis.Connection:
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or local.pid != os.getpid():
            # After a fork the parent's socket is left to the parent (redis-py's disconnect
            # does not shut down a socket from another process).
            connection = self._connection_class(**self._connection_kwargs)
            local.connection, local.pid = connection, os.getpid()
        return connection  # type: ignore[no-any-return]

    @staticmethod
    def _run(connection: redis.Connection, args: tuple[Any, ...]) -> Any:
        # redis-py's connection drops its socket itself on any failure while sending or
        # reading; an exception between the two (a signal's: Celery's soft time limit) would
        # leave the answer unread for the next command, so the socket is dropped then too.
        # An error answer (``ResponseError``) leaves the connection in step.
        try:
            connection.send_command(*args)
            return connection.read_response()
        except redis.ResponseError:
            raise
        except BaseException:
            connection.disconnect()
            raise


class Script:
    """A Lua script and its SHA1, as ``EVALSHA`` names it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
