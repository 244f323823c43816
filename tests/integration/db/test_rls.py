"""Row Level Security on the trial database: the wall behind the ORM filter (DESIGN §3)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import ProgrammingError

from config.settings import Settings
from domain.bootstrap import build_provider
from domain.db.provider import TRIAL, DataProvider
from domain.messaging import outbox
from domain.messaging.contracts.tenancy import TenantProvisionedV1
from domain.notifications.models import Notice
from tests.integration.db.conftest import Tenants, add_notices

RAW_INSERT = text("INSERT INTO notices (id, tenant_id, user_id, event_id, category, title, body) "
                  "VALUES (:id, :tenant, :user, :event, 'test', 'raw', '')")


@pytest.fixture
def own_provider(settings: Settings) -> Iterator[DataProvider]:
    """A provider of its own, so its trial pool holds only this test's connections."""
    built = build_provider(settings)
    yield built
    built.dispose()


def test_raw_sql_that_forgets_the_filter_sees_only_its_tenant(provider: DataProvider,
                                                               tenants: Tenants) -> None:
    a, b = tenants.trial(), tenants.trial()
    add_notices(provider, TRIAL, a, 2)
    add_notices(provider, TRIAL, b, 3)
    with provider.tenant(a) as session:
        assert session.scalar(text("SELECT count(*) FROM notices")) == 2
        assert set(session.scalars(text("SELECT DISTINCT tenant_id FROM notices"))) == {a}
    with provider.unscoped(TRIAL) as session:
        assert session.scalar(select(func.count()).select_from(Notice)
                              .where(Notice.tenant_id.in_([a, b]))) == 5


def test_raw_insert_of_another_tenants_row_violates_the_policy(provider: DataProvider,
                                                                tenants: Tenants) -> None:
    a, b = tenants.trial(), tenants.trial()
    params = {"id": uuid.uuid4(), "tenant": b, "user": uuid.uuid4(), "event": uuid.uuid4()}
    with provider.tenant(a) as session, pytest.raises(ProgrammingError) as raised:
        session.execute(RAW_INSERT, params)
    assert isinstance(raised.value.orig, psycopg.errors.InsufficientPrivilege)
    assert "row-level security policy" in str(raised.value.orig)
    with provider.tenant(a) as session:
        session.execute(RAW_INSERT, {**params, "tenant": a})  # its own tenant's row is allowed
        session.commit()


def test_app_role_without_a_tenant_sees_nothing(provider: DataProvider, settings: Settings,
                                                tenants: Tenants) -> None:
    add_notices(provider, TRIAL, tenants.trial(), 2)
    with provider.unscoped(TRIAL) as session:
        assert session.scalar(text("SELECT count(*) FROM notices")) >= 2
        session.execute(text(f"SET LOCAL ROLE {settings.tenant_db_role}"))
        assert session.scalar(text("SELECT count(*) FROM notices")) == 0


def test_session_runs_as_the_app_role_with_its_tenant(provider: DataProvider, settings: Settings,
                                                      tenants: Tenants) -> None:
    a = tenants.trial()
    with provider.tenant(a) as session:
        row = session.execute(text("SELECT current_user, current_setting('app.tenant_id')")).one()
        assert tuple(row) == (settings.tenant_db_role, str(a))
        session.commit()  # a new transaction sets both again
        assert session.scalar(text("SELECT current_setting('app.tenant_id')")) == str(a)


def test_role_and_tenant_do_not_outlive_the_transaction(own_provider: DataProvider,
                                                        tenants: Tenants) -> None:
    with own_provider.tenant(tenants.trial()) as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    with own_provider.unscoped(TRIAL) as session:
        row = session.execute(text("SELECT pg_backend_pid(), current_user = session_user, "
                                   "current_setting('app.tenant_id', true)")).one()
    assert tuple(row) == (pid, True, "")  # the same pooled connection, back to itself


@pytest.mark.parametrize("tenant_id", ["x'; RESET ROLE; --", "", "not-a-uuid"])
def test_tenant_ids_that_are_not_uuids_are_refused_before_any_sql(provider: DataProvider,
                                                                 tenant_id: str) -> None:
    with pytest.raises(ValueError, match=r"UUID|hexadecimal"):
        provider.tenant(tenant_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"UUID|hexadecimal"):
        provider.invalidate(tenant_id)  # type: ignore[arg-type]


def test_tenant_sessions_see_only_their_own_outbox_rows(provider: DataProvider, tenants: Tenants) -> None:
    """Messages in the trial outbox are behind the same wall as business rows."""
    mine, theirs = tenants.trial(), tenants.trial()
    for tenant_id in (mine, theirs):
        with provider.tenant(tenant_id) as session:
            outbox.record(session, TenantProvisionedV1(
                tenant_id=tenant_id, tenant_name="t", admin_user_id=uuid.uuid4(), admin_name="a",
                admin_email="a@example.com"), tenant_id=tenant_id, correlation_id=None)
            session.commit()
    with provider.tenant(mine) as session:
        seen = set(session.execute(text("SELECT DISTINCT tenant_id FROM outbox")).scalars())
    assert seen == {mine}
