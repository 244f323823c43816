"""The write gate of a tenant session: its lock is held by every write of the transaction,
savepoints included."""
from __future__ import annotations

from sqlalchemy import text

from domain.db.provider import DataProvider
from domain.employment.models import OrgUnit
from tests.integration.messaging.helpers import trial_tenant

# The advisory locks this session's backend holds (the gate's is the only one it takes here).
HELD = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")


def test_a_write_after_a_rolled_back_savepoint_passes_the_gate_again(provider: DataProvider) -> None:
    tenant_id = trial_tenant(provider)
    with provider.tenant(tenant_id) as session:
        savepoint = session.begin_nested()
        session.add(OrgUnit(name="Rolled back"))
        session.flush()  # the transaction's first write: the gate's lock, taken inside the savepoint
        assert session.scalar(HELD) == 1
        savepoint.rollback()
        assert session.scalar(HELD) == 0  # PostgreSQL released it with the savepoint
        session.add(OrgUnit(name="Kept"))
        session.flush()  # so this write must wait at the gate again: a copy may have begun
        assert session.scalar(HELD) == 1
        session.rollback()


def test_a_write_after_a_released_savepoint_keeps_the_lock(provider: DataProvider) -> None:
    tenant_id = trial_tenant(provider)
    with provider.tenant(tenant_id) as session:
        with session.begin_nested():
            session.add(OrgUnit(name="In the savepoint"))
            session.flush()
        assert session.scalar(HELD) == 1  # released into the transaction, the lock with it
        session.add(OrgUnit(name="After it"))
        session.flush()
        assert session.scalar(HELD) == 1
        session.rollback()
