"""Admission control per (tenant, queue) on real PostgreSQL (domain.messaging.fairness).

A tenant may have ``FAIRNESS_LIMITS`` messages in flight on a queue; more are written
parked (durable, unsent), released first-come as its messages complete (in the worker's
transaction), and by the relay round-robin across tenants. Another tenant is never held up
by one tenant's parked backlog; the relay never re-sends a parked row; concurrent writers
cannot take more slots than there are.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from config.settings import Settings
from domain.bootstrap import build_provider
from domain.db.base import utcnow
from domain.db.provider import TRIAL, DataProvider
from domain.messaging import fairness, handling, outbox, relay
from domain.messaging.contracts.assets import ProcessAssetV1
from domain.messaging.contracts.tenancy import ProvisionTenantV1
from domain.messaging.outbox import Envelope
from domain.messaging.tables import outbox as outbox_table
from tests.support import tenants

LIMIT = 2


@pytest.fixture(scope="module")
def fair(settings: Settings) -> Iterator[DataProvider]:
    """A provider whose sessions allow 2 messages in flight per tenant on ``assets``, and
    whose messages are due again at once (for the relay test)."""
    built = build_provider(settings.model_copy(update={"fairness_limits": {"assets": LIMIT},
                                                       "message_lease_seconds": 0.01}))
    yield built
    built.dispose()


def _tenant(provider: DataProvider) -> uuid.UUID:
    return tenants.create_tenant(provider, ("owner",)).id


def _record(provider: DataProvider, tenant_id: uuid.UUID, count: int = 1) -> list[Envelope]:
    """Record ``count`` process commands for the tenant, each in its own transaction; the
    envelopes admitted (to publish now)."""
    admitted: list[Envelope] = []
    for _ in range(count):
        with provider.tenant(tenant_id) as session:
            command = ProcessAssetV1(asset_id=uuid.uuid4(), tenant_id=tenant_id, blocked_kinds=[])
            outbox.record(session, command, tenant_id=tenant_id, correlation_id=None)
            admitted += outbox.take_pending(session)
            session.commit()
    return admitted


def _standing(provider: DataProvider, tenant_id: uuid.UUID) -> tuple[int, int]:
    with provider.tenant(tenant_id) as session:
        return fairness.standing(session, "assets", tenant_id)


def _complete(provider: DataProvider, envelope: Envelope, *, release: bool) -> list[Envelope]:
    """Mark a delivery completed (as the worker does), releasing the tenant's next if asked."""
    tenant_id = uuid.UUID(envelope.tenant_id or "")
    with provider.tenant(tenant_id) as session:
        outbox.mark_completed(session, uuid.UUID(envelope.id))
        if release:
            outbox.release_parked(session, "assets", [tenant_id])
        released = outbox.take_pending(session)
        session.commit()
    return released


def _parked_ids(provider: DataProvider, tenant_id: uuid.UUID) -> list[uuid.UUID]:
    with provider.tenant(tenant_id) as session:
        return list(session.scalars(select(outbox_table.c.id).where(
            outbox_table.c.tenant_id == tenant_id, outbox_table.c.parked_at.is_not(None))
            .order_by(outbox_table.c.created_at)))


def test_beyond_the_limit_messages_are_parked_and_released_in_order(fair: DataProvider) -> None:
    a = _tenant(fair)
    admitted = _record(fair, a, 5)
    assert len(admitted) == LIMIT and _standing(fair, a) == (2, 3)
    parked = _parked_ids(fair, a)
    released = _complete(fair, admitted[0], release=True)
    assert [uuid.UUID(e.id) for e in released] == parked[:1]  # the oldest parked one
    assert _standing(fair, a) == (2, 2)
    assert released[0].handler == "assets.process_asset" and released[0].origin == TRIAL


def test_another_tenant_is_not_held_up_by_a_backlog(fair: DataProvider) -> None:
    a, b = _tenant(fair), _tenant(fair)
    _record(fair, a, 6)
    assert len(_record(fair, b, 1)) == 1  # sent at once: its own slots are free
    assert _standing(fair, b) == (1, 0)


def test_a_new_message_parks_behind_the_tenants_parked_ones(fair: DataProvider) -> None:
    a = _tenant(fair)
    admitted = _record(fair, a, 3)
    _complete(fair, admitted[0], release=False)  # a slot frees, but its wake-up was lost
    assert _standing(fair, a) == (1, 1)
    assert _record(fair, a, 1) == []  # first come, first released: it waits behind the parked one
    assert _standing(fair, a) == (1, 2)


def test_the_worker_releases_the_next_in_the_transaction_that_completes(fair: DataProvider) -> None:
    a = _tenant(fair)
    first, _ = _record(fair, a, 3)
    (waiting,) = _parked_ids(fair, a)
    outcome = handling.handle(fair, first, ProcessAssetV1, "tenant", lambda ctx, msg: None)
    assert [uuid.UUID(e.id) for e in outcome.emitted] == [waiting]
    assert _standing(fair, a) == (2, 0)


def test_the_relay_releases_round_robin_and_never_resends_a_parked_row(fair: DataProvider) -> None:
    tenant_ids = [_tenant(fair) for _ in range(3)]
    for tenant_id in tenant_ids:
        for envelope in _record(fair, tenant_id, 4):
            _complete(fair, envelope, release=False)  # their wake-ups were lost: 2 parked each
    with fair.unscoped(TRIAL) as session:  # what the relay's re-sending would pick: no parked row
        result = relay.sweep(session, lease_seconds=0.01, max_attempts=5, batch=10_000)
        session.rollback()
    assert not {uuid.UUID(e.id) for e in result.resent} & {
        i for t in tenant_ids for i in _parked_ids(fair, t)}
    released = [uuid.UUID(e.tenant_id or "") for e in relay.release_parked_all(fair, TRIAL)]
    order = [tenant_id for tenant_id in released if tenant_id in tenant_ids]
    assert order == tenant_ids + tenant_ids  # A B C A B C: one of each tenant in turn
    assert all(_standing(fair, t) == (2, 0) for t in tenant_ids)


def test_concurrent_writers_cannot_take_more_slots_than_there_are(fair: DataProvider) -> None:
    a = _tenant(fair)
    start = threading.Barrier(8)
    admitted: list[Envelope] = []

    def write() -> None:
        start.wait()
        admitted.extend(_record(fair, a, 1))

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(admitted) == LIMIT and _standing(fair, a) == (LIMIT, 8 - LIMIT)


def test_queues_without_a_limit_are_not_admitted(fair: DataProvider) -> None:
    with fair.management() as session:
        command = ProvisionTenantV1(signup_id=uuid.uuid4(), tenant_id=uuid.uuid4())
        envelopes = outbox.record(session, command, tenant_id=command.tenant_id, correlation_id=None)
        assert outbox.take_pending(session) == envelopes
        parked = session.scalar(select(func.count()).where(outbox_table.c.id == uuid.UUID(envelopes[0].id),
                                                           outbox_table.c.parked_at.is_not(None)))
        session.rollback()
    assert parked == 0


def test_parked_work_survives_without_any_counter(fair: DataProvider) -> None:
    """The database is the only record: nothing parked depends on the broker. Lost sent
    copies keep their slots until the relay re-sends them (their lease)."""
    a = _tenant(fair)
    admitted = _record(fair, a, 4)
    with fair.tenant(a) as session:  # the copies sent are lost (a flushed broker): still in flight
        session.execute(update(outbox_table).where(outbox_table.c.id.in_([uuid.UUID(e.id) for e in admitted]))
                        .values(next_attempt_at=utcnow()))
        session.commit()
    assert _standing(fair, a) == (2, 2)
    with fair.unscoped(TRIAL) as session:
        resent = relay.sweep(session, lease_seconds=0.01, max_attempts=5, batch=10_000).resent
        session.commit()
    assert {e.id for e in admitted} <= {e.id for e in resent}
    assert _standing(fair, a) == (2, 2)


def test_a_process_without_the_limit_releases_what_is_parked(fair: DataProvider, settings: Settings) -> None:
    """A limit removed (or set in another process only) must not strand parked work."""
    a = _tenant(fair)
    _record(fair, a, 5)
    assert _standing(fair, a) == (2, 3)
    open_queues = build_provider(settings.model_copy(update={"fairness_limits": {}}))
    try:
        released = [e for e in relay.release_parked_all(open_queues, TRIAL) if e.tenant_id == str(a)]
    finally:
        open_queues.dispose()
    assert len(released) == 3 and _standing(fair, a) == (5, 0)
