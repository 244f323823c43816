"""Holding a promotion at a step (its checkpoint lock) and seeing a run wait there."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from domain.db.provider import DataProvider
from domain.tenancy.copying import connect
from domain.tenancy.promotion import checkpoint_lock
from tests.support.waiting import wait_for


@contextmanager
def held_before(provider: DataProvider, step: str) -> Iterator[psycopg.Connection]:
    """Hold every promotion of the stack before ``step`` until the block ends."""
    with connect(provider.url_of("management"), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", checkpoint_lock(step))
        try:
            yield conn
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", checkpoint_lock(step))


def waiting_at(conn: psycopg.Connection, step: str) -> bool:
    """True while some run waits on the checkpoint lock of ``step``."""
    first, second = checkpoint_lock(step)
    row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                       "AND classid = %s AND objid = %s AND objsubid = 2 AND database = "
                       "(SELECT oid FROM pg_database WHERE datname = current_database())",
                       (first, second)).fetchone()
    return bool(row and row[0])


def wait_until_waiting_at(conn: psycopg.Connection, step: str, timeout: float = 60.0) -> None:
    """Wait until a run reaches ``step``'s checkpoint and waits there."""
    wait_for(lambda: waiting_at(conn, step), timeout=timeout, message=f"a promotion waiting before {step}")
