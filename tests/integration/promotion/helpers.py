"""Holding a promotion at a step (its checkpoint lock) and seeing a run wait there; a client
writing to a tenant at a steady pace."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from domain.db.provider import DataProvider, TenantMoved
from domain.notifications.models import Notice
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


class SteadyWriter(threading.Thread):
    """Writes one notice every ``interval`` seconds; a write is acknowledged once committed."""

    def __init__(self, provider: DataProvider, tenant_id: uuid.UUID, interval: float) -> None:
        super().__init__(name="steady-writer", daemon=True)
        self.provider, self.tenant_id, self.interval = provider, tenant_id, interval
        self.user_id = uuid.uuid4()
        self.acked: list[uuid.UUID] = []
        self.delays: list[float] = []
        self.moved = 0  # writes that found the tenant moved and went again on the new route
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        """Write until told to stop; keep the first unexpected error."""
        try:
            while not self.halt.is_set():
                self.write_one()
                self.halt.wait(self.interval)  # the client's pace
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def write_one(self) -> None:
        """One write, retried on the new route while the tenant is found moved."""
        notice_id, started = uuid.uuid4(), time.monotonic()
        while True:
            try:
                with self.provider.tenant(self.tenant_id) as session:
                    session.add(Notice(id=notice_id, user_id=self.user_id, event_id=uuid.uuid4(),
                                       category="steady", title="a steady write"))
                    session.commit()
                break
            except TenantMoved:
                # Moved, but the new route may not be committed yet (a promotion that died
                # between its fence and its switch): go again shortly.
                self.moved += 1
                time.sleep(0.05)  # a client's retry back-off
        self.acked.append(notice_id)
        self.delays.append(time.monotonic() - started)
