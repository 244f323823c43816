"""The outbox is written in the business transaction; events fan out to one row per subscriber."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from domain.db.provider import DataProvider
from domain.identity.services import PasswordSealer
from domain.messaging import bus, outbox
from domain.messaging.contracts.tenancy import ProvisionTenantV1, TenantProvisionedV1
from domain.messaging.tables import outbox as outbox_table
from domain.tenancy import services as tenancy
from domain.tenancy.models import Signup
from tests.integration.messaging.helpers import outbox_rows, signup_request, tenant_id_of, welcome
from tests.support import refs


def test_a_rolled_back_signup_leaves_neither_the_tenant_nor_its_message(provider: DataProvider) -> None:
    request, correlation = signup_request(), refs.slug("corr")
    with provider.management() as session:
        signup_id = tenancy.sign_up_tenant(session, request, correlation_id=correlation,
                                           sealer=PasswordSealer(provider.settings.secret_key))
        # Inside the transaction both rows exist...
        assert session.get(Signup, signup_id) is not None
        assert len(session.execute(select(outbox_table).where(
            outbox_table.c.correlation_id == correlation)).all()) == 1
        session.rollback()
    # ...and after the rollback neither does.
    assert tenant_id_of(provider, request.slug) is None
    assert outbox_rows(provider, correlation_id=correlation) == []


def test_a_committed_signup_leaves_both_and_neither_is_visible_before_commit(provider: DataProvider) -> None:
    request, correlation = signup_request(), refs.slug("corr")
    with provider.management() as session:
        signup_id = tenancy.sign_up_tenant(session, request, correlation_id=correlation,
                                           sealer=PasswordSealer(provider.settings.secret_key))
        assert tenant_id_of(provider, request.slug) is None  # another connection sees nothing yet
        assert outbox_rows(provider, correlation_id=correlation) == []
        session.commit()
    tenant_id = tenant_id_of(provider, request.slug)
    (row,) = outbox_rows(provider, correlation_id=correlation)
    assert tenant_id is not None
    assert (row["type"], row["handler"]) == (ProvisionTenantV1.message_type, "tenancy.provision_tenant")
    assert row["tenant_id"] == tenant_id
    assert row["id"] == row["event_id"]  # a command has one delivery, named by the message
    assert ProvisionTenantV1.parse(row["version"], row["payload"]) == \
        ProvisionTenantV1(signup_id=signup_id, tenant_id=tenant_id)
    assert row["completed_at"] is None and row["attempts"] == 0
    assert row["next_attempt_at"] > row["created_at"]


@pytest.mark.parametrize("subscribers", [
    ("notifications.record_welcome_notice",),
    ("notifications.record_welcome_notice", "billing.open_account"),
    ("notifications.record_welcome_notice", "billing.open_account", "identity.send_welcome_mail"),
])
def test_an_event_becomes_one_delivery_per_subscriber(provider: DataProvider, monkeypatch: pytest.MonkeyPatch,
                                                      subscribers: tuple[str, ...]) -> None:
    monkeypatch.setitem(bus.SUBSCRIBERS, TenantProvisionedV1.message_type, subscribers)
    tenant_id = uuid.uuid4()
    with provider.management() as session:
        envelopes = outbox.record(session, welcome(tenant_id), tenant_id=tenant_id, correlation_id=None)
        rows = session.execute(select(outbox_table).where(
            outbox_table.c.event_id == uuid.UUID(envelopes[0].event_id))).mappings().all()
        pending = outbox.take_pending(session)
        session.rollback()
    assert sorted(r["handler"] for r in rows) == sorted(subscribers)
    assert len({r["id"] for r in rows}) == len(subscribers)          # a delivery id each
    assert {str(r["id"]) for r in rows} == {e.id for e in envelopes}
    assert all(r["payload"] == rows[0]["payload"] and r["tenant_id"] == tenant_id for r in rows)
    assert pending == envelopes                                       # all published after commit


def test_an_event_nobody_subscribes_to_writes_nothing(provider: DataProvider,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(bus.SUBSCRIBERS, TenantProvisionedV1.message_type)
    with provider.management() as session:
        assert outbox.record(session, welcome(uuid.uuid4()), tenant_id=None, correlation_id=None) == []
        assert outbox.take_pending(session) == []
        session.rollback()
