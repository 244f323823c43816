"""Seeing a session wait for an advisory lock: the condition a concurrency test waits on,
never a sleep."""
from __future__ import annotations

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.support.waiting import wait_for

# Sessions of this database (other suites share the server) waiting for one advisory lock:
# a bigint key is kept as its two 32-bit halves, classid the high one, objid the low one.
_WAITERS = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s AND objid = %s AND objsubid = 1")


def advisory_waiters(conn: psycopg.Connection, lock_key: int) -> int:
    """How many sessions of ``conn``'s database wait for the advisory lock ``lock_key``."""
    key = lock_key & 0xFFFFFFFFFFFFFFFF  # as PostgreSQL keeps a negative key
    row = conn.execute(_WAITERS, (key >> 32, key & 0xFFFFFFFF)).fetchone()
    return int(row[0]) if row else 0


def wait_until_someone_waits_for(url: str, lock_key: int, what: str, *, timeout: float = 30.0) -> None:
    """Until a session of the database at ``url`` waits for the advisory lock ``lock_key``."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as observer:
        wait_for(lambda: advisory_waiters(observer, lock_key) == 1, timeout=timeout,
                 message=f"{what} to wait for the lock")


# Sessions waiting behind one backend: for a lock it holds, or behind another such waiter.
_BEHIND = """
WITH RECURSIVE behind(pid) AS (
    SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))
    UNION
    SELECT a.pid FROM pg_stat_activity a JOIN behind b ON b.pid = ANY(pg_blocking_pids(a.pid))
)
SELECT count(*) FROM behind
"""


def blocked_by(url: str, holder_pid: int) -> int:
    """How many sessions wait behind backend ``holder_pid``: for a lock (row, table or
    advisory) it holds, or behind another session that does. The session a test keeps open,
    not whatever else waits on the server."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        row = conn.execute(_BEHIND, (holder_pid,)).fetchone()
    return int(row[0]) if row else 0


def backend_pid(session: Session) -> int:
    """The backend of ``session``'s connection (its transaction begun, if it was not)."""
    return int(session.scalar(text("SELECT pg_backend_pid()")))
