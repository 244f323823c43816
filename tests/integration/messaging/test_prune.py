"""Pruning: delivered messages past retention go; open, dead and recent ones stay."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.errors import Conflict
from domain.messaging import handling, relay
from domain.messaging.contracts.tenancy import TenantProvisionedV1
from domain.messaging.tables import inbox, outbox
from tests.integration.messaging.helpers import (
    harmless,
    inbox_has,
    outbox_row,
    record,
    trial_tenant,
    welcome,
)

RETENTION = timedelta(days=7)


def age(provider: DataProvider, delivery_id: str, **values: object) -> None:
    """Set timestamps of an outbox row in the management database."""
    with provider.unscoped("management") as session:
        session.execute(update(outbox).where(outbox.c.id == uuid.UUID(delivery_id)).values(**values))
        session.commit()


def test_only_delivered_messages_past_retention_are_pruned(provider: DataProvider) -> None:
    long_ago, recently = utcnow() - RETENTION * 2, utcnow() - RETENTION / 2
    old_done, recent_done, old_open, old_dead = (record(provider, harmless())[0].id for _ in range(4))
    age(provider, old_done, completed_at=long_ago)
    age(provider, recent_done, completed_at=recently)
    age(provider, old_open, created_at=long_ago)
    age(provider, old_dead, created_at=long_ago, dead_at=long_ago)
    old_inbox, recent_inbox = uuid.uuid4(), uuid.uuid4()
    with provider.unscoped("management") as session:
        session.execute(inbox.insert(), [
            {"message_id": old_inbox, "handler": "test", "processed_at": long_ago},
            {"message_id": recent_inbox, "handler": "test", "processed_at": recently}])
        session.commit()

    report = relay.prune_all(provider, retention=RETENTION)

    assert report["failed"] == 0 and report["deleted"] >= 2
    with provider.unscoped("management") as session:
        left = {str(i) for i in session.scalars(select(outbox.c.id).where(outbox.c.id.in_(
            [uuid.UUID(d) for d in (old_done, recent_done, old_open, old_dead)])))}
        inbox_left = set(session.scalars(select(inbox.c.message_id).where(
            inbox.c.message_id.in_([old_inbox, recent_inbox]))))
    assert left == {recent_done, old_open, old_dead}
    assert inbox_left == {recent_inbox}


def test_a_dead_delivery_handled_late_on_another_database_is_confirmed_before_its_inbox_goes(
        provider: DataProvider) -> None:
    # A welcome is sent from the management database and handled on the tenant's. Buried by
    # the relay, then handled by a copy that arrived late: only the tenant's inbox knows.
    tenant_id = trial_tenant(provider)
    (envelope,) = record(provider, welcome(tenant_id), tenant_id=tenant_id)
    with provider.unscoped("management") as session:
        session.execute(update(outbox).where(outbox.c.id == uuid.UUID(envelope.id)).values(dead_at=utcnow()))
        session.commit()
    outcome = handling.handle(provider, envelope, TenantProvisionedV1, "tenant", lambda ctx, msg: None)
    assert not outcome.duplicate and inbox_has(provider, "trial", envelope.id)
    assert envelope.id in {str(r.id) for r in relay.list_all(provider, "dead", limit=10_000).rows}

    report = relay.prune_all(provider, retention=RETENTION)

    assert report["confirmed"] >= 1 and report["failed"] == 0
    row = outbox_row(provider, envelope.id)
    assert row is not None and row["completed_at"] is not None and row["dead_at"] is None
    assert envelope.id not in {str(r.id) for r in relay.list_all(provider, "dead", limit=10_000).rows}
    with pytest.raises(Conflict):  # it cannot be revived to run a second time
        relay.revive_in(provider, "management", uuid.UUID(envelope.id), lease_seconds=60)
