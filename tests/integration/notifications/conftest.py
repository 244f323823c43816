"""Fixtures of the notifications suites: a stack of their own (fresh databases, a Redis server
started for this package, so no other suite's worker takes their messages), real SMTP
servers on 127.0.0.1, and real notifications workers started per test."""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from config.settings import Settings, load_settings
from domain.bootstrap import build_catalogues, build_provider
from domain.db.provider import TRIAL, DataProvider
from domain.messaging import outbox
from domain.messaging.contracts import Contract
from domain.messaging.outbox import Envelope
from domain.messaging.tables import inbox
from domain.notifications.models import EmailDelivery, Notice
from domain.translations.catalogues import Catalogues
from tests.integration.notifications.smtp_server import Certificate, SmtpServer, self_signed, smtp_server
from tests.support import processes, tenants
from tests.support.apps import web_app
from tests.support.services import Services, Stack, create_stack, drop_stack
from tests.support.tenants import TenantWithMembers
from tests.support.waiting import wait_for
from workers import embedded
from workers.publisher import publish

REDIS_DB = 0  # of this package's own Redis server


@dataclass
class Plane:
    """The package's stack: settings, provider and web app on it, and helpers to send events."""

    stack: Stack
    settings: Settings
    provider: DataProvider
    app: Flask
    env: dict[str, str]
    logs: Path

    def catalogues(self) -> Catalogues:
        """The product's catalogues, as the workers load them."""
        return build_catalogues(self.settings)

    def tenant(self, roles: tuple[str, ...] = ("owner", "admin", "employee"), **kw: Any) -> TenantWithMembers:
        """A committed trial tenant with a member per role."""
        return tenants.create_tenant(self.provider, roles, prefix="notify", **kw)

    def announce(self, message: Contract, tenant_id: uuid.UUID | None = None) -> Envelope:
        """Record ``message`` in the management outbox, commit, publish its notifications delivery."""
        with self.provider.management() as session:
            tenant = tenant_id or message.tenant_id  # type: ignore[attr-defined]
            envelopes = outbox.record(session, message, tenant_id=tenant, correlation_id="notifications-test")
            outbox.discard_pending(session)
            session.commit()
        (envelope,) = [e for e in envelopes if e.handler.startswith("notifications.")]
        self.deliver(envelope)
        return envelope

    def deliver(self, envelope: Envelope) -> None:
        """Publish ``envelope`` (again: a redelivery, as the relay or the broker would)."""
        assert publish(self.app.extensions["allotment.celery"], [envelope]) == 1

    def handled(self, envelope: Envelope, db_key: str = TRIAL) -> bool:
        """True once ``db_key``'s inbox recorded the delivery."""
        with self.provider.unscoped(db_key) as session:
            return session.scalar(select(inbox.c.message_id).where(
                inbox.c.message_id == uuid.UUID(envelope.id))) is not None

    def wait_handled(self, envelope: Envelope, db_key: str = TRIAL, timeout: float = 60) -> None:
        """Wait until a worker handled the delivery."""
        wait_for(lambda: self.handled(envelope, db_key), timeout=timeout, message=f"{envelope.type} handled")

    def notices(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[Notice]:
        """The user's notices in the tenant, oldest first."""
        with self.provider.tenant(tenant_id) as session:
            return list(session.scalars(select(Notice).where(Notice.user_id == user_id)
                                        .order_by(Notice.created_at, Notice.id)))

    def deliveries(self, event_id: str | uuid.UUID) -> list[EmailDelivery]:
        """The email deliveries of one event."""
        with self.provider.management() as session:
            return list(session.scalars(select(EmailDelivery).where(
                EmailDelivery.event_id == uuid.UUID(str(event_id))).order_by(EmailDelivery.recipient)))

    def worker(self, name: str, concurrency: int = 1, **env: str) -> processes.Process:
        """A real ``celery worker -Q notifications`` on this stack, started and consuming."""
        return processes.celery_worker(name, "notifications", {**self.env, **env}, self.logs, concurrency)


@pytest.fixture(scope="package")
def plane(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """Fresh databases and a Redis server of this package's own, with the app on them."""
    redis_server = embedded.start_redis(tmp_path_factory.mktemp("notify-redis"), embedded.free_port())
    own = Services(services.server_url, redis_server.url(0).rsplit("/", 1)[0])
    stack = create_stack(own, redis_db=REDIS_DB)
    root = tmp_path_factory.mktemp("notify")
    env = stack.env(VAR_DIR=str(root / "var"))
    settings = load_settings(env)
    provider = build_provider(settings)
    (root / "logs").mkdir()
    try:
        with web_app(settings) as app:
            yield Plane(stack, settings, provider, app, env, root / "logs")
    finally:
        provider.dispose()
        drop_stack(stack)
        redis_server.stop()


@pytest.fixture
def workers(plane: Plane) -> Iterator[Callable[..., processes.Process]]:
    """Start notifications workers for one test; each is stopped when the test ends."""
    started: list[processes.Process] = []

    def start(name: str, concurrency: int = 1, **env: str) -> processes.Process:
        worker = plane.worker(name, concurrency, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A plain SMTP server for one test."""
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="package")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (the CA file workers are told to trust)."""
    return self_signed(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def secure_smtp(certificate: Certificate) -> Iterator[SmtpServer]:
    """An SMTP server that requires STARTTLS and a login before any mail."""
    with smtp_server(certificate) as server:
        yield server
