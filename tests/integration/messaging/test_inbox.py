"""The inbox: a delivery's effects happen once, however often and however concurrently it arrives."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, insert, select, text

from domain.db.fences import tenant_fences
from domain.db.provider import DataProvider, TenantMoved
from domain.messaging import handling, inbox, outbox, relay
from domain.messaging.contracts.identity import PasswordResetRequestedV1
from domain.messaging.contracts.tenancy import TenantProvisionedV1
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from domain.notifications.models import Notice
from tests.integration.messaging.helpers import (
    inbox_has,
    is_overdue,
    outbox_row,
    record,
    trial_tenant,
    welcome,
)
from tests.support.waiting import wait_for


def add_notice(ctx: HandlerContext, msg: TenantProvisionedV1) -> None:
    """A deliberately non-idempotent effect: a new notice (fresh event id) on every run."""
    ctx.session.add(Notice(id=uuid.uuid4(), user_id=msg.admin_user_id, event_id=uuid.uuid4(),
                           category="test", title="effect"))


def notices_of(provider: DataProvider, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """How many notices the handler left for ``user_id``."""
    with provider.tenant(tenant_id) as session:
        return session.scalar(select(func.count()).select_from(Notice).where(Notice.user_id == user_id)) or 0


@pytest.fixture
def delivery(provider: DataProvider) -> tuple[Envelope, uuid.UUID, uuid.UUID]:
    """A committed, unpublished welcome delivery to a real trial tenant: (envelope, tenant, user)."""
    tenant_id, user_id = trial_tenant(provider), uuid.uuid4()
    (envelope,) = record(provider, welcome(tenant_id, user_id), tenant_id=tenant_id)
    return envelope, tenant_id, user_id


def test_a_redelivery_is_skipped_and_the_message_completed(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    envelope, tenant_id, user_id = delivery
    first = handling.handle(provider, envelope, TenantProvisionedV1, "tenant", add_notice)
    second = handling.handle(provider, envelope, TenantProvisionedV1, "tenant", add_notice)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert notices_of(provider, tenant_id, user_id) == 1
    assert inbox_has(provider, "trial", envelope.id)
    row = outbox_row(provider, envelope.id)
    assert row is not None and row["completed_at"] is not None


def test_a_delivery_whose_payload_names_another_tenant_is_refused_and_not_run(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    # Routed by the envelope's tenant, acted on by the payload's: a mismatch runs nothing,
    # claims nothing, and fails (not transient: the relay buries it for operators).
    envelope, tenant_id, _ = delivery
    other = trial_tenant(provider)
    forged = Envelope.from_dict({**envelope.as_dict(), "tenant_id": str(other)})
    ran: list[TenantProvisionedV1] = []
    with pytest.raises(PermissionError, match=f"delivered as tenant {other} and names tenant {tenant_id}"):
        handling.handle(provider, forged, TenantProvisionedV1, "tenant", lambda ctx, msg: ran.append(msg))
    assert ran == [] and not inbox_has(provider, "trial", envelope.id)


def test_a_message_naming_another_tenant_than_its_own_is_not_recorded(provider: DataProvider) -> None:
    with provider.management() as session, pytest.raises(ValueError, match="recorded for tenant"):
        outbox.record(session, welcome(uuid.uuid4()), tenant_id=uuid.uuid4(), correlation_id=None)


def _reset_asked(user_id: uuid.UUID) -> PasswordResetRequestedV1:
    return PasswordResetRequestedV1(user_id=user_id, email="someone@example.com", name="Someone",
                                    sealed_token="sealed", expires_at=datetime.now(UTC))


def test_a_message_of_no_tenant_is_recorded_for_no_tenant_only(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    envelope, tenant_id, _ = delivery
    with provider.management() as session:
        with pytest.raises(ValueError, match="is no tenant's message, recorded for tenant"):
            outbox.record(session, _reset_asked(uuid.uuid4()), tenant_id=tenant_id, correlation_id=None)
        # A handler acting for a tenant that emits one records it for no tenant.
        ctx = HandlerContext(session, envelope, provider)
        ctx.emit(_reset_asked(uuid.uuid4()))
        assert [e.tenant_id for e in ctx.emitted] == [None]
        with pytest.raises(ValueError, match="is no tenant's message"):
            ctx.emit(_reset_asked(uuid.uuid4()), tenant_id=tenant_id)
        session.rollback()


def test_a_redelivery_completes_a_message_whose_completion_was_lost(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    # The effect and the inbox row commit on the tenant database; marking the outbox row on
    # the management database is a second transaction that a crash can lose.
    envelope, tenant_id, user_id = delivery
    with provider.tenant(tenant_id) as session:
        add_notice(HandlerContext(session, envelope, provider), welcome(tenant_id, user_id))
        session.execute(text("INSERT INTO inbox (message_id, handler) VALUES (:id, :handler)"),
                        {"id": uuid.UUID(envelope.id), "handler": envelope.handler})
        session.commit()
    assert outbox_row(provider, envelope.id)["completed_at"] is None  # type: ignore[index]
    assert handling.handle(provider, envelope, TenantProvisionedV1, "tenant", add_notice).duplicate
    assert outbox_row(provider, envelope.id)["completed_at"] is not None  # type: ignore[index]
    assert notices_of(provider, tenant_id, user_id) == 1


def waiting_on_a_lock(provider: DataProvider) -> bool:
    """True while another transaction on the trial database waits for a row lock on the inbox."""
    with provider.unscoped("trial") as session:
        return bool(session.scalar(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE '%inbox%'")))


def test_two_concurrent_deliveries_apply_the_effect_once(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    envelope, tenant_id, user_id = delivery

    def effect_then_wait_for_the_other(ctx: HandlerContext, msg: TenantProvisionedV1) -> None:
        # Keep the first claim open until the second delivery is provably blocked on it.
        add_notice(ctx, msg)
        wait_for(lambda: waiting_on_a_lock(provider), timeout=60, message="the second delivery to block")

    def deliver() -> handling.Outcome:
        return handling.handle(provider, envelope, TenantProvisionedV1, "tenant",
                               effect_then_wait_for_the_other)

    with ThreadPoolExecutor(2) as pool:
        outcomes = [f.result(timeout=120) for f in [pool.submit(deliver), pool.submit(deliver)]]
    assert sorted(o.duplicate for o in outcomes) == [False, True]
    assert notices_of(provider, tenant_id, user_id) == 1
    assert outbox_row(provider, envelope.id)["completed_at"] is not None  # type: ignore[index]


def test_a_failed_first_delivery_leaves_the_concurrent_one_to_apply_the_effect(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    envelope, tenant_id, user_id = delivery
    runs: list[str] = []

    def fail_first_run(ctx: HandlerContext, msg: TenantProvisionedV1) -> None:
        runs.append("run")
        add_notice(ctx, msg)
        if len(runs) == 1:
            wait_for(lambda: waiting_on_a_lock(provider), timeout=60, message="the second delivery to block")
            raise RuntimeError("first delivery fails after its effect")

    def deliver() -> handling.Outcome | Exception:
        try:
            return handling.handle(provider, envelope, TenantProvisionedV1, "tenant", fail_first_run)
        except RuntimeError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = [f.result(timeout=120) for f in [pool.submit(deliver), pool.submit(deliver)]]
    assert len(runs) == 2
    assert sum(isinstance(o, RuntimeError) for o in outcomes) == 1
    assert [o.duplicate for o in outcomes if isinstance(o, handling.Outcome)] == [False]
    assert notices_of(provider, tenant_id, user_id) == 1
    assert inbox_has(provider, "trial", envelope.id)


def test_a_delivery_handled_on_another_database_is_confirmed_by_the_relay_not_resent(
        provider: DataProvider, fast_provider: DataProvider) -> None:
    """The worker pays one transaction; the relay reads the consumer's inbox instead of re-sending."""
    tenant_id, user_id = trial_tenant(provider), uuid.uuid4()
    (envelope,) = record(fast_provider, welcome(tenant_id, user_id), tenant_id=tenant_id)
    assert not handling.handle(provider, envelope, TenantProvisionedV1, "tenant", add_notice).duplicate
    assert outbox_row(provider, envelope.id)["completed_at"] is None  # type: ignore[index]
    wait_for(lambda: is_overdue(fast_provider, envelope.id), timeout=30, message="the lease to pass")

    sent: list[Envelope] = []
    relay.sweep_all(fast_provider, lease_seconds=0.3, max_attempts=3, batch=10_000,
                    publish=lambda envelopes: sent.extend(envelopes) or len(envelopes))

    row = outbox_row(provider, envelope.id)
    assert row is not None and row["completed_at"] is not None and row["attempts"] == 0
    assert envelope.id not in {e.id for e in sent}
    assert notices_of(provider, tenant_id, user_id) == 1


def test_a_delivery_to_a_tenant_fenced_away_claims_nothing(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    """The claim goes in the round trip of the write gate, so it has run when the gate finds
    the tenant moved: it must be undone with the transaction."""
    envelope, tenant_id, user_id = delivery
    with provider.unscoped("trial") as session:
        session.execute(insert(tenant_fences).values(tenant_id=tenant_id, moved_to="dedicated:elsewhere"))
        session.commit()
    try:
        with pytest.raises(TenantMoved):
            handling.handle(provider, envelope, TenantProvisionedV1, "tenant", add_notice)
        assert not inbox_has(provider, "trial", envelope.id)
        assert notices_of(provider, tenant_id, user_id) == 0
    finally:
        with provider.unscoped("trial") as session:
            session.execute(delete(tenant_fences).where(tenant_fences.c.tenant_id == tenant_id))
            session.commit()


def test_a_tenant_session_claims_no_other_tenants_delivery(
        provider: DataProvider, delivery: tuple[Envelope, uuid.UUID, uuid.UUID]) -> None:
    envelope, tenant_id, _ = delivery
    with provider.tenant(tenant_id) as session, pytest.raises(PermissionError):
        inbox.claim(session, uuid.UUID(envelope.id), envelope.handler, uuid.uuid4())
    assert not inbox_has(provider, "trial", envelope.id)
