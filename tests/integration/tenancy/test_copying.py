"""Deleting a tenant's rows in batches (a promotion's purge of the trial database, an
offboarding) leaves none of them, whatever writes the rows meanwhile."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Uuid

from config.settings import Settings
from domain.tenancy import copying
from tests.support.waiting import wait_for


@pytest.fixture
def probe_table(settings: Settings) -> Iterator[tuple[str, Table]]:
    """A scratch table of tenant rows in the trial database (dropped afterwards), and its DSN."""
    dsn = settings.trial_database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    table = Table(f"purge_probe_{uuid.uuid4().hex[:12]}", MetaData(),
                  Column("tenant_id", Uuid), Column("value", Integer))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table.name} (tenant_id uuid NOT NULL, value int NOT NULL)")
    try:
        yield dsn, table
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {table.name}")


def _waiting_on_a_lock(watcher: psycopg.Connection, pid: int) -> bool:
    row = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return bool(row and row[0] == "Lock")


def test_a_row_updated_while_its_batch_deletes_it_is_deleted_too(probe_table: tuple[str, Table]) -> None:
    dsn, table = probe_table
    tenant_id, other = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(dsn, autocommit=True) as setup:
        for owner, value in ((tenant_id, 1), (tenant_id, 2), (tenant_id, 3), (other, 4)):
            setup.execute(f"INSERT INTO {table.name} VALUES (%s, %s)", [owner, value])
    purger = psycopg.connect(dsn, autocommit=True)
    writer, watcher = psycopg.connect(dsn), psycopg.connect(dsn, autocommit=True)
    deleted: list[int] = []
    try:
        # A writer the write gate does not hold back (the relay, an origin's completion)
        # updates one of the rows while the purge's batch runs: the row moves to a new place
        # (ctid), so the batch, which found it at the old one, passes it by.
        writer.execute(f"UPDATE {table.name} SET value = value + 10 WHERE value = 2")
        purge = threading.Thread(
            target=lambda: deleted.append(copying.delete_rows(purger, [table], tenant_id)))
        purge.start()
        wait_for(lambda: _waiting_on_a_lock(watcher, purger.info.backend_pid), timeout=30,
                 message="the purge's batch to wait for the updated row")
        writer.commit()
        purge.join(timeout=30)
        assert not purge.is_alive()
        remaining = watcher.execute(f"SELECT tenant_id, value FROM {table.name} ORDER BY value").fetchall()
        assert remaining == [(other, 4)]  # the tenant's three rows gone, the other tenant's kept
        assert deleted == [3]
    finally:
        for conn in (purger, writer, watcher):
            conn.close()
