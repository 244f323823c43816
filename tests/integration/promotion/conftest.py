"""Fixtures of the promotion tests: a stack of their own placed over two real PostgreSQL
servers (the suite's and a second one started from the pgserver wheel), trial tenants with
rows, and real tenancy workers."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from psycopg.types.json import Jsonb
from sqlalchemy import select

from config.settings import Settings, load_settings
from domain.bootstrap import build_provider
from domain.db.provider import TRIAL, DataProvider
from domain.tenancy.copying import connect
from domain.tenancy.models import Promotion, Tenant
from tests.support import processes
from tests.support.apps import web_app
from tests.support.planes import drop_dedicated
from tests.support.services import SecondServer, Services, Stack, create_stack, drop_stack
from tests.support.tenants import TenantWithMembers, create_tenant

REDIS_DB_PROMOTION = 8  # (8, 9): see tests/support/services.py for the others
# Short route caches and grace, short leases and a fast relay (config/settings.py names).
SETTINGS = {"ROUTING_CACHE_TTL": "1", "PROMOTION_PURGE_GRACE_SECONDS": "1",
            "MESSAGE_LEASE_SECONDS": "3", "RELAY_INTERVAL_SECONDS": "1"}


@dataclass
class Plane:
    """A stack over two placement servers, its provider and web app."""

    stack: Stack
    settings: Settings
    provider: DataProvider
    app: Flask
    env: dict[str, str]
    servers: tuple[str, str]  # server URLs: the suite's, then the second

    def tenant(self, rows: int = 0) -> TenantWithMembers:
        """A trial tenant with an owner and ``rows`` notices (plus an outbox and inbox row)."""
        tenant = create_tenant(self.provider, ("owner",))
        add_trial_rows(self.provider, tenant.id, rows)
        return tenant

    def promotion(self, promotion_id: uuid.UUID) -> Promotion:
        """The promotion's row as it stands."""
        with self.provider.management() as session:
            promotion = session.get(Promotion, promotion_id)
            assert promotion is not None
            return promotion

    def tenant_row(self, tenant_id: uuid.UUID) -> Tenant:
        """The tenant's management row as it stands."""
        with self.provider.management() as session:
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            return tenant

    def promotions_of(self, tenant_id: uuid.UUID) -> list[Promotion]:
        """Every promotion of a tenant, oldest first."""
        with self.provider.management() as session:
            return list(session.scalars(select(Promotion).where(Promotion.tenant_id == tenant_id)
                                        .order_by(Promotion.created_at)))


def add_trial_rows(provider: DataProvider, tenant_id: uuid.UUID, notices: int) -> None:
    """``notices`` notices, one outbox row and one inbox row of the tenant in the trial database
    (COPY: 20,000 rows in well under a second)."""
    with connect(provider.url_of(TRIAL)) as conn:
        with conn.cursor().copy("COPY notices (id, tenant_id, user_id, event_id, category, title, body) "
                                "FROM STDIN") as copy:
            for i in range(notices):
                copy.write_row((uuid.uuid4(), tenant_id, uuid.uuid4(), uuid.uuid4(), "seed",
                                f"seeded notice {i}", "x" * (i % 50)))
        conn.execute("INSERT INTO outbox (id, event_id, type, version, handler, payload, tenant_id, "
                     "next_attempt_at, completed_at) VALUES (%s, %s, 'test.Seeded', 1, "
                     "'notifications.none', %s, %s, now(), now())",
                     (uuid.uuid4(), uuid.uuid4(), Jsonb({"seed": True}), tenant_id))
        conn.execute("INSERT INTO inbox (message_id, handler, tenant_id) VALUES (%s, 'test.seed', %s)",
                     (uuid.uuid4(), tenant_id))
        conn.commit()


def rows_in(url: str, table: str, tenant_id: uuid.UUID) -> int:
    """How many rows of the tenant ``table`` holds in the database of ``url``."""
    with connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE tenant_id = %s", (tenant_id,)).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def plane(services: Services, second_server: SecondServer, tmp_path: Path) -> Iterator[Plane]:
    """A fresh stack whose tenants are placed over the suite's server and the second one."""
    stack = create_stack(services, redis_db=REDIS_DB_PROMOTION)
    servers = (services.server_url, second_server.url)
    env = stack.env(VAR_DIR=str(tmp_path / "var"), PLACEMENT_SERVERS=",".join(servers), **SETTINGS)
    settings = load_settings(env)
    provider = build_provider(settings)
    try:
        with web_app(settings) as app:
            yield Plane(stack, settings, provider, app, env, servers)
    finally:
        drop_dedicated(provider)
        provider.dispose()
        drop_stack(stack)


@pytest.fixture
def tenancy_worker(plane: Plane, log_dir: Path) -> Iterator[Callable[..., processes.Process]]:
    """Start real workers on the plane's stack; each is stopped when the test ends."""
    started: list[processes.Process] = []

    def start(name: str = "tenancy", queues: str = "tenancy", concurrency: int = 1) -> processes.Process:
        worker = processes.celery_worker(name, queues, plane.env, log_dir, concurrency)
        started.append(worker)
        return worker

    yield start
    processes.stop_all(started)


@pytest.fixture
def plane_beat(plane: Plane, log_dir: Path) -> Iterator[processes.Process]:
    """``celery beat`` on the plane's stack (the relay sweep every second, promotion resumes)."""
    beat = processes.celery_beat(plane.env, log_dir)
    yield beat
    beat.stop()
