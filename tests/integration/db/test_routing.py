"""Routing: tenant -> trial or dedicated database, cached until invalidated (DESIGN §3)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from config.settings import Settings, database_name
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import TRIAL, DataProvider
from domain.errors import NotFound
from domain.notifications.models import Notice
from domain.tenancy.models import Tenant
from tests.integration.db.conftest import MakeDatabase, Tenants, placement_label


@pytest.fixture
def long_cache(settings: Settings) -> Iterator[DataProvider]:
    """A provider whose routes never expire by themselves during a test."""
    built = build_provider(settings.model_copy(update={"routing_cache_ttl": 3600.0}))
    yield built
    built.dispose()


def test_trial_tenant_routes_to_the_trial_database(provider: DataProvider, settings: Settings,
                                                   tenants: Tenants) -> None:
    route = provider.route(tenants.trial())
    assert (route.db_key, route.url, route.status) == (TRIAL, settings.trial_database_url, "trial")


def test_dedicated_tenant_routes_to_its_database(provider: DataProvider, tenants: Tenants,
                                                 make_database: MakeDatabase) -> None:
    url = make_database("tenant")
    route = provider.route(tenants.dedicated(url))
    assert route.db_key == tenants.key(url)
    assert database_name(route.url) == database_name(url)
    assert migrate.current_revision(route.url) == migrate.head("tenant")


def test_cached_route_holds_until_invalidated(long_cache: DataProvider, tenants: Tenants,
                                              make_database: MakeDatabase) -> None:
    tenant_id, url = tenants.trial(), make_database("tenant")
    assert long_cache.route(tenant_id).db_key == TRIAL
    with long_cache.management() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(
            status="dedicated", placement_server=placement_label(long_cache),
            database_name=database_name(url)))
        session.commit()
    assert long_cache.route(tenant_id).db_key == TRIAL  # still the cached route
    long_cache.invalidate(tenant_id)
    assert long_cache.route(tenant_id).db_key == tenants.key(url)


def test_unknown_and_deleted_tenants_are_not_found(provider: DataProvider, tenants: Tenants) -> None:
    with pytest.raises(NotFound):
        provider.route(uuid.uuid4())
    deleted = tenants.trial()
    with provider.management() as session:
        session.execute(update(Tenant).where(Tenant.id == deleted).values(status="deleted"))
        session.commit()
    with pytest.raises(NotFound):
        provider.tenant(deleted)


def test_dedicated_tenant_session_writes_only_its_database(provider: DataProvider, tenants: Tenants,
                                                           make_database: MakeDatabase) -> None:
    url = make_database("tenant")
    tenant_id = tenants.dedicated(url)
    with provider.tenant(tenant_id) as session:
        session.add(Notice(user_id=uuid.uuid4(), event_id=uuid.uuid4(), category="test", title="x"))
        session.commit()
    count = select(func.count()).select_from(Notice).where(Notice.tenant_id == tenant_id)
    with provider.unscoped(tenants.key(url)) as session:
        assert session.scalar(count) == 1
    with provider.unscoped(TRIAL) as session:
        assert session.scalar(count) == 0
