"""Fixtures of the notifications suites: a stack of their own (fresh databases, a Redis server
started for this package, so no other suite's worker takes their messages), real SMTP
servers on 127.0.0.1, and real notifications workers started per test.

Emails are sent by the sending stage (``domain.notifications.sending``), after the event's
handler recorded them: a test waits for the delivery row or the server to show an email,
runs beat's ``email-sender`` job through the broker when it needs a sender woken (as beat
would every 15 s), or drives the stage in-process with ``sending.drain``. Each test ends
with no email left waiting for a sender, so the next test's sender sends only its own."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import func, select, update

from config.celery import BEAT_JOBS, queue_for_task
from config.settings import Settings, load_settings
from domain.bootstrap import build_catalogues, build_provider
from domain.db.provider import TRIAL, DataProvider
from domain.identity.services import PasswordSealer
from domain.messaging import outbox
from domain.messaging.contracts import Contract
from domain.messaging.outbox import Envelope
from domain.messaging.tables import inbox
from domain.notifications import deliveries as delivery_records
from domain.notifications import queries
from domain.notifications.deliveries import Request, Sealer
from domain.notifications.mail import Email
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
from workers.senders import FLAG as SENDER_FLAG

REDIS_DB = 0  # of this package's own Redis server
EMAIL_SENDER_JOB = BEAT_JOBS["email-sender"][0]  # what beat sends every 15 s
# States the sending stage is done with (or never took up).
FINAL = frozenset({"sent", "failed", "unconfirmed", "throttled", "suppressed"})
WAITING = ("queued", "retry", "sending")
LEFT_OVER = "left waiting when its test ended"


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

    def delivery(self, event_id: str | uuid.UUID) -> EmailDelivery:
        """The one email delivery of an event."""
        (row,) = self.deliveries(event_id)
        return row

    def wait_settled(self, event_id: str | uuid.UUID, timeout: float = 60) -> list[EmailDelivery]:
        """The event's deliveries, once the sending stage is done with every one of them."""

        def settled() -> list[EmailDelivery]:
            rows = self.deliveries(event_id)
            return rows if rows and all(row.state in FINAL for row in rows) else []

        return wait_for(settled, timeout=timeout, message=f"the emails of {event_id} to be settled")

    def shown(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[uuid.UUID, str | None]:
        """Each of the user's notices' email status as the API and the page show it (a notice
        stored ``queued`` shows its delivery's state), by notice id."""
        with self.provider.tenant(tenant_id) as session, self.provider.management() as management:
            page = queries.notice_page(session, user_id, limit=10_000, management=management)
        return {n.id: n.email_status for n in page.items}

    def sealer(self) -> PasswordSealer:
        """The sealer of the workers' payloads (the same SECRET_KEY)."""
        return PasswordSealer(self.settings.secret_key)

    def queue_emails(self, addresses: Sequence[str], *, subject: str = "Queued",
                     sealer: Sealer | None = None) -> list[uuid.UUID]:
        """Record one email per address for the sending stage, as a handler does (no sender
        is woken); the event ids, in order."""
        events = [uuid.uuid4() for _ in addresses]
        emails = [(Request(event, address, "billing", subject),
                   Email(key=f"{event}:{address}", to=address, subject=subject, text=f"to {address}",
                         html=f"<p>to {address}</p>"))
                  for event, address in zip(events, addresses, strict=True)]
        with self.provider.management() as session:
            outcomes = delivery_records.record(session, sealer or self.sealer(), self.settings.mail_from,
                                               emails)
            session.commit()
        assert {o.state for o in outcomes} == {"queued"}, outcomes
        return events

    def run_email_sender_job(self) -> dict[str, Any]:
        """Beat's ``email-sender`` job, sent through the broker and run by a worker: it
        settles long-dead attempts and wakes a sender if emails are due."""
        publisher = self.app.extensions["allotment.celery"]
        result: dict[str, Any] = publisher.send_task(
            EMAIL_SENDER_JOB, queue=queue_for_task(EMAIL_SENDER_JOB)).get(timeout=60)
        return result

    def make_retries_due(self, event_id: str | uuid.UUID) -> int:
        """Move the ``due_at`` of the event's ``retry`` rows to now; how many.

        An honest shortcut for the backoff (10 s, 20 s, ... with jitter): the test does not
        wait for nothing; what is asserted (attempts, outcomes) does not depend on the pause.
        """
        with self.provider.management() as session:
            moved = session.execute(update(EmailDelivery).where(
                EmailDelivery.event_id == uuid.UUID(str(event_id)), EmailDelivery.state == "retry")
                .values(due_at=func.now())).rowcount
            session.commit()
        return moved

    def settle_left_overs(self) -> None:
        """Settle every email still waiting for (or in) the sending stage as failed, and forget
        any sender's "awake" flag: what one test left must not be sent during the next."""
        with self.provider.management() as session:
            session.execute(update(EmailDelivery).where(EmailDelivery.state.in_(WAITING)).values(
                state="failed", error=LEFT_OVER, payload=None, claimed_until=None, finished_at=func.now()))
            session.commit()
        client = Redis.from_url(self.settings.redis_url)
        try:
            client.delete(SENDER_FLAG)
        finally:
            client.close()

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


def group_gone(process: processes.Process) -> bool:
    """True once no process of ``process``'s group (the worker and its pool children) runs."""
    for found in psutil.process_iter(["status"]):
        try:
            if os.getpgid(found.pid) == process.pid and found.info["status"] != psutil.STATUS_ZOMBIE:
                return False
        except (ProcessLookupError, psutil.Error):
            continue
    return True


@pytest.fixture(autouse=True)
def no_email_left_waiting(plane: Plane) -> Iterator[None]:
    """After each test (and its workers, stopped first): nothing left for the next sender."""
    yield
    plane.settle_left_overs()


@pytest.fixture
def workers(plane: Plane) -> Iterator[Callable[..., processes.Process]]:
    """Start notifications workers for one test; each is stopped when the test ends."""
    started: list[processes.Process] = []

    def start(name: str, concurrency: int = 1, **env: str) -> processes.Process:
        worker = plane.worker(name, concurrency, **env)
        started.append(worker)
        return worker

    yield start
    processes.stop_all(started)


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
