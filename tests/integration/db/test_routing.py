"""Routing: tenant -> trial or dedicated database, cached until invalidated (DESIGN §3)."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, update

from config.settings import Settings, database_name
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import TRIAL, DataProvider
from domain.db.routing import RedisRoutingChannel
from domain.errors import NotFound
from domain.notifications.models import Notice
from domain.tenancy import queries as tenancy_queries
from domain.tenancy.models import Tenant
from tests.integration.db.conftest import MakeDatabase, Tenants, placement_label
from tests.support.waiting import wait_for


@pytest.fixture
def long_cache(settings: Settings) -> Iterator[DataProvider]:
    """A provider whose routes never expire by themselves during a test."""
    built = build_provider(settings.model_copy(update={"routing_cache_ttl": 3600.0}))
    wait_for(built.hears_routing_changes, timeout=30, message="the routing listener")
    yield built
    built.dispose()


def move_to(provider: DataProvider, tenant_id: uuid.UUID, url: str) -> None:
    """Place a tenant on the database of ``url`` without telling anyone."""
    with provider.management() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant_id).values(
            status="dedicated", placement_server=placement_label(provider),
            database_name=database_name(url)))
        session.commit()


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
    move_to(long_cache, tenant_id, url)
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


@pytest.mark.parametrize("disposed_first", [False, True],
                         ids=["listening", "listening again after a dispose"])
def test_a_routing_change_reaches_every_process(long_cache: DataProvider, settings: Settings,
                                                tenants: Tenants, make_database: MakeDatabase,
                                                disposed_first: bool) -> None:
    """Another process's change drops this process's cached route at once, not after the TTL."""
    if disposed_first:  # a provider used again after dispose() listens again
        long_cache.dispose()
        wait_for(long_cache.hears_routing_changes, timeout=30, message="the routing listener, again")
    other = build_provider(settings)  # its own Redis connection and listener, as in another process
    try:
        tenant_id, url = tenants.trial(), make_database("tenant")
        assert long_cache.route(tenant_id).db_key == TRIAL
        move_to(other, tenant_id, url)
        assert long_cache.route(tenant_id).db_key == TRIAL  # cached, and nobody has said anything
        other.routing_changed(tenant_id)
        wait_for(lambda: long_cache.route(tenant_id).db_key == tenants.key(url), timeout=30,
                 message="the change to reach the other provider")
    finally:
        other.dispose()


def test_a_process_that_cannot_hear_changes_does_not_cache(settings: Settings, tenants: Tenants,
                                                            make_database: MakeDatabase) -> None:
    """With the change channel unreachable, every lookup reads the routing table."""
    deaf = DataProvider(settings.model_copy(update={"routing_cache_ttl": 3600.0}),
                        tenancy_queries.placement_of, tenancy_queries.dedicated_databases,
                        RedisRoutingChannel("redis://127.0.0.1:1/0"))
    try:
        tenant_id, url = tenants.trial(), make_database("tenant")
        assert deaf.route(tenant_id).db_key == TRIAL
        move_to(deaf, tenant_id, url)
        assert deaf.route(tenant_id).db_key == tenants.key(url)
        assert not deaf.hears_routing_changes()
    finally:
        deaf.dispose()


def test_disposing_a_provider_stops_its_listener_forgets_its_routes_and_using_it_again_restarts_it(
        settings: Settings, tenants: Tenants, make_database: MakeDatabase) -> None:
    # A process that builds and disposes providers (the test suite, a CLI command) must not
    # keep a listener thread and its Redis connection per provider it ever built; and a
    # provider that stops hearing changes must not keep the routes it cached while it heard.
    def listeners() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "routing-listener" and t.is_alive()}

    before = listeners()
    built = build_provider(settings.model_copy(update={"routing_cache_ttl": 3600.0}))
    try:
        wait_for(built.hears_routing_changes, timeout=30, message="the routing listener")
        (started,) = listeners() - before
        tenant_id, url = tenants.trial(), make_database("tenant")
        assert built.route(tenant_id).db_key == TRIAL
        move_to(built, tenant_id, url)  # nobody is told: only the cache still says trial
        assert built.route(tenant_id).db_key == TRIAL
        built.dispose()
        started.join(timeout=30)
        assert not started.is_alive()
        assert listeners() - before == set()
        assert built.route(tenant_id).db_key == tenants.key(url)  # read anew, not from the cache
        # Using it again started the listener again.
        wait_for(built.hears_routing_changes, timeout=30, message="the routing listener, again")
        (again,) = listeners() - before
    finally:
        built.dispose()
    again.join(timeout=30)
    assert not again.is_alive()
