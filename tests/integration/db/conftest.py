"""Fixtures of the data-plane tests: throwaway databases, tenants placed on them, isolated stacks."""
from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text, update

from config.settings import Settings, database_name, database_on, load_settings
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import DataProvider, dedicated_key, server_label
from domain.notifications.models import Notice
from domain.tenancy.models import Tenant
from tests.support import locks, refs
from tests.support.apps import web_app
from tests.support.services import REDIS_DB_DB_ISOLATION, Services, Stack, create_stack, drop_stack

MakeDatabase = Callable[..., str]


@pytest.fixture
def make_database(services: Services) -> Iterator[MakeDatabase]:
    """Create fresh databases on the suite's server (optionally migrated); drop them afterwards."""
    created: list[str] = []

    def make(environment: migrate.Environment | None = None, role: str = "allotment_tenant") -> str:
        url = database_on(services.server_url, f"allot_db_{secrets.token_hex(5)}")
        created.append(url)
        migrate.ensure_database(url)
        if environment is not None:
            migrate.upgrade(environment, url, role if environment == "tenant" else "")
        return url

    yield make
    for url in created:
        migrate.drop_database(url)


def wait_until_someone_waits_for(engine: Engine, lock_key: int, what: str) -> None:
    """Until a session of ``engine``'s database waits for the advisory lock ``lock_key``."""
    locks.wait_until_someone_waits_for(engine.url.render_as_string(hide_password=False), lock_key, what,
                                       timeout=10)


MakeProbeEngine = Callable[..., Engine]


@pytest.fixture
def make_probe_engine(make_database: MakeDatabase) -> Iterator[MakeProbeEngine]:
    """Engines on fresh databases holding one table, ``probe (<columns>)``; disposed afterwards
    (for the tests of the statements sent straight to the driver)."""
    built: list[Engine] = []

    def make(columns: str, **engine_options: Any) -> Engine:
        engine = create_engine(make_database().replace("postgresql://", "postgresql+psycopg://", 1),
                               **engine_options)
        built.append(engine)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE probe ({columns})"))
        return engine

    yield make
    for engine in built:
        engine.dispose()


@dataclass
class Tenants:
    """Adds tenant rows to a management database and retires them when the test ends."""

    provider: DataProvider
    slugs: dict[uuid.UUID, str] = field(default_factory=dict)

    def trial(self) -> uuid.UUID:
        """A new trial tenant (its data lives in the shared trial database)."""
        return self._add(None, None)

    def dedicated(self, url: str) -> uuid.UUID:
        """A new tenant placed on the database of ``url``."""
        return self._add(placement_label(self.provider), database_name(url))

    def key(self, url: str) -> str:
        """The provider's key of a dedicated database."""
        return dedicated_key(placement_label(self.provider), database_name(url))

    def _add(self, server: str | None, database: str | None) -> uuid.UUID:
        tenant_id, slug = uuid.uuid4(), refs.slug("db")
        status = "dedicated" if database else "trial"
        with self.provider.management() as session:
            session.add(Tenant(id=tenant_id, slug=slug, name="Data plane test",
                               status=status, plan=status, placement_server=server,
                               database_name=database))
            session.commit()
        self.slugs[tenant_id] = slug
        return tenant_id

    def retire(self) -> None:
        """Mark every added tenant deleted so no later listing routes to a dropped database."""
        with self.provider.management() as session:
            session.execute(update(Tenant).where(Tenant.id.in_(list(self.slugs))).values(status="deleted"))
            session.commit()


@pytest.fixture
def tenants(provider: DataProvider, make_database: MakeDatabase) -> Iterator[Tenants]:
    """Tenant rows in the session's management database (retired before their databases drop)."""
    made = Tenants(provider)
    yield made
    made.retire()


def placement_label(provider: DataProvider) -> str:
    """The label of the (only) configured placement server, as stored in ``placement_server``."""
    return server_label(provider.settings.placement_servers[0])


def add_notices(provider: DataProvider, db_key: str, tenant_id: uuid.UUID, count: int,
                user_id: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Insert ``count`` notices of a tenant through an unscoped session; return their ids."""
    notices = [Notice(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id or uuid.uuid4(),
                      event_id=uuid.uuid4(), category="test", title=f"notice {i}")
               for i in range(count)]
    with provider.unscoped(db_key) as session:
        session.add_all(notices)
        session.commit()
    return [n.id for n in notices]


def connections_to(database_url: str, services: Services) -> int:
    """How many server backends are connected to the database of ``database_url``."""
    dsn = services.server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                           (database_name(database_url),)).fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class Isolated:
    """A stack of its own: management and trial databases no other test lists tenants from."""

    stack: Stack
    settings: Settings
    provider: DataProvider
    app: Flask

    def worker_env(self) -> dict[str, str]:
        """Environment overrides that point a worker at this stack."""
        return {"DATABASE_URL": self.stack.database_url,
                "TRIAL_DATABASE_URL": self.stack.trial_database_url,
                "BROKER_URL": self.stack.broker_url, "RESULT_BACKEND": self.stack.result_backend}


@pytest.fixture
def isolated(services: Services, tmp_path: Path) -> Iterator[Isolated]:
    """A fresh migrated stack (Redis databases 12/13) with its provider and app."""
    stack = create_stack(services, redis_db=REDIS_DB_DB_ISOLATION)
    settings = load_settings(stack.env(VAR_DIR=str(tmp_path / "var")))
    provider = build_provider(settings)
    try:
        with web_app(settings) as app:
            yield Isolated(stack, settings, provider, app)
    finally:
        provider.dispose()
        drop_stack(stack)
