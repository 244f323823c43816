"""Notify benchmark: emails per second through the notifications pool to a local SMTP server,
against a plain ``smtplib`` loop sending the same messages to the same server, same run.

    .venv/bin/python -m bench.notify [--emails 1000] [--fanout 100] [--concurrency 2] [--workers 1]

The SMTP server is aiosmtpd's ``Sink`` handler in a process of its own on 127.0.0.1 (it
accepts and discards). Ours, two workloads of ``--emails`` each, recorded in the management
outbox and published while the worker is paused, then handled by a real
``celery -A workers.app worker -Q notifications``:

- fan-out: ``PublicationPublishedV1`` events naming ``--fanout`` readers each (a
  publication's audience, the bulk of a platform's mail);
- one event per email: ``AssetProcessedV1`` ("your file is ready"), each to its owner.

Per event the handler resolves the recipients, writes the notices, renders each email
(Jinja2, both parts, in the recipient's language) and records it for the sending stage;
senders send the recorded emails in batches over their kept SMTP connection. An email
counts once its row says ``sent`` (the server acknowledged it). Every recipient is a
different account, so no one is throttled. Baseline: one ``smtplib.SMTP`` connection in this
process sending the same rendered messages (built before the clock starts) one after the
other. See bench/README.md.
"""
from __future__ import annotations

import argparse
import smtplib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

import redis
from celery import Celery
from sqlalchemy import func, insert, select

from bench.common import (
    DEFAULT_POSTGRES,
    BenchError,
    Stack,
    Target,
    add_trial_tenant,
    cpu_seconds,
    final_line,
    run_bench,
    table,
    targets_line,
    wait_for,
)
from bench.dispatch import Consumer, Drain, start_consumer
from config.settings import load_settings
from domain.bootstrap import build_catalogues, build_provider
from domain.db.provider import DataProvider
from domain.iam.models import TenantUser
from domain.identity.models import User
from domain.messaging import outbox
from domain.messaging.contracts import Contract
from domain.messaging.contracts.assets import AssetProcessedV1
from domain.messaging.contracts.publications import PublicationPublishedV1
from domain.messaging.outbox import Envelope
from domain.notifications import texts
from domain.notifications.branding import Branding
from domain.notifications.mail import Email, build_message, sender_address
from domain.notifications.models import EmailDelivery
from domain.translations.translator import Translator
from workers import embedded
from workers.mail_rendering import JinjaEmailRenderer
from workers.publisher import publish, web_publisher

QUEUE = "notifications"


@dataclass(frozen=True)
class Raw:
    """The plain loop: how many messages, how long."""

    count: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Messages accepted by the server per second."""
        return self.count / self.seconds


@dataclass(frozen=True)
class Recipients:
    """The tenant and its people, one event each."""

    tenant_id: uuid.UUID
    tenant_name: str
    users: list[tuple[uuid.UUID, str]]  # id, email


def seed(provider: DataProvider, count: int) -> Recipients:
    """A trial tenant and ``count`` accounts, its active members (a tenant's events reach only
    those; one insert each)."""
    with provider.management() as session:
        tenant_id, _ = add_trial_tenant(session, "Bench Mail Org")
        users = [(uuid.uuid4(), f"bench-{i:06d}-{uuid.uuid4().hex[:6]}@example.com") for i in range(count)]
        rows = [{"id": u, "email": e, "name": f"Reader {i}", "password_hash": None, "is_operator": False,
                 "active": True} for i, (u, e) in enumerate(users)]
        session.execute(insert(User), rows)
        session.execute(insert(TenantUser), [{"tenant_id": tenant_id, "user_id": u, "active": True}
                                             for u, _ in users])
        session.commit()
    return Recipients(tenant_id, "Bench Mail Org", users)


TITLE, AUTHOR = "Quarterly update", "Bench Author"


@dataclass(frozen=True)
class Workload:
    """One way the emails come about: the events, and the texts each reader's email carries."""

    name: str
    fanout: int  # readers per event

    def events(self, recipients: Recipients, users: list[tuple[uuid.UUID, str]]) -> list[Contract]:
        """The events reaching ``users``."""
        if self.fanout == 1:
            return [AssetProcessedV1(asset_id=uuid.uuid4(), tenant_id=recipients.tenant_id, owner_id=user_id,
                                     filename=f"scan-{i:05d}.pdf", status="ready")
                    for i, (user_id, _) in enumerate(users)]
        return [PublicationPublishedV1(publication_id=uuid.uuid4(), tenant_id=recipients.tenant_id,
                                       title=TITLE, author_name=AUTHOR,
                                       recipient_ids=[user_id for user_id, _ in users[i:i + self.fanout]])
                for i in range(0, len(users), self.fanout)]

    def text(self, i: int) -> tuple[texts.NoticeText, dict[str, object]]:
        """The notice text of reader ``i``'s email and its values."""
        if self.fanout == 1:
            return texts.ASSET_READY, {"filename": f"scan-{i:05d}.pdf", "reason": ""}
        return texts.PUBLISHED, {"title": TITLE, "author": AUTHOR}


def recorder(provider: DataProvider, publisher: Celery, batch: list[Contract]) -> Callable[[], None]:
    """Record ``batch`` in the outbox now (untimed, 100 a transaction); the call that publishes it."""
    envelopes: list[Envelope] = []
    for start in range(0, len(batch), 100):
        with provider.management() as session:
            for event in batch[start:start + 100]:
                envelopes += outbox.record(session, event, tenant_id=event.tenant_id,  # type: ignore[attr-defined]
                                           correlation_id=None)
            outbox.take_pending(session)
            session.commit()

    def send() -> None:
        if publish(publisher, envelopes) != len(envelopes):
            raise BenchError("publishing to the broker failed")

    return send


def sent(provider: DataProvider) -> int:
    """Emails the server acknowledged so far (delivery rows settled ``sent``)."""
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(EmailDelivery)
                              .where(EmailDelivery.state == "sent")) or 0


def same_messages(settings_env: dict[str, str], recipients: Recipients, workload: Workload,
                  count: int) -> list[tuple[str, Message]]:
    """The messages the pool sent, rendered and built the same way, ready to go (untimed)."""
    settings = load_settings(settings_env)
    translate = Translator("en", build_catalogues(settings))
    renderer, public_url = JinjaEmailRenderer(), settings.public_url
    built = []
    for i, (_user_id, email) in enumerate(recipients.users[:count]):
        text, params = workload.text(i)
        title, body = translate(text.title, **params), translate(text.body, **params)
        rendered = renderer.render("notice", {
            "recipient": f"Reader {i}", "title": title, "body": body,
            "branding": Branding(recipients.tenant_name), "link": f"{public_url}/notifications",
            "public_url": public_url, "locale": "en", "values": params}, translate)
        message = build_message(Email(key=f"raw-{i}:{email}", to=email, subject=title, text=rendered.text,
                                      html=rendered.html, sender_name=recipients.tenant_name),
                                settings.mail_from)
        built.append((email, message))
    return built


def smtplib_loop(port: int, sender: str, messages: list[tuple[str, Message]]) -> Raw:
    """One connection, one ``send_message`` per message (it flattens each, as our mailer does)."""
    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        started = time.perf_counter()
        for to, message in messages:
            connection.send_message(message, from_addr=sender, to_addrs=[to])
        elapsed = time.perf_counter() - started
    finally:
        connection.quit()
    return Raw(len(messages), elapsed)


@dataclass(frozen=True)
class Measured:
    """One workload: the pool's drain and the plain loop on the same messages."""

    workload: Workload
    pool: Drain
    raw: Raw

    @property
    def ratio(self) -> float:
        """Pool emails per second over the loop's."""
        return self.pool.per_second / self.raw.per_second


def measure(args: argparse.Namespace, stack: Stack) -> list[Measured]:
    """Start the SMTP server and the pool; per workload, the pool's drain then the plain loop."""
    server = stack.start_redis()
    databases = stack.create_databases()
    port = embedded.free_port()
    smtp = stack.spawn("smtp-sink", [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
                                     "-c", "aiosmtpd.handlers.Sink"], {})
    wait_for(lambda: embedded.port_open(port), timeout=30, what="the SMTP server", watch=[smtp])
    env = stack.env(databases, LOG_LEVEL="WARNING", WORKER_CONCURRENCY=str(args.concurrency),
                    MAIL_TRANSPORT="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_STARTTLS="false")
    provider = build_provider(load_settings(env))
    stack.on_close(provider.dispose)
    publisher = web_publisher(server.url(0), server.url(1))
    stack.on_close(publisher.close)
    broker = redis.Redis.from_url(server.url(0))
    stack.on_close(broker.close)
    workloads = [Workload("fan-out", args.fanout), Workload("one event per email", 1)]
    recipients = seed(provider, args.warmup + args.emails * len(workloads))
    users = recipients.users[args.warmup:]

    pool = Pool([start_consumer(stack, "workers.app", QUEUE, f"notify{i}", env=env, args=args,
                                control=publisher, broker=broker) for i in range(args.workers)], args.timeout)
    warm_users = recipients.users[:args.warmup]
    for consumer in pool.consumers:  # each worker answers the warm-up: all of them are up
        share = args.warmup // args.workers
        warm = workloads[1].events(recipients, warm_users[:share])
        consumer.warm(share, recorder(provider, publisher, warm), lambda: sent(provider))
        warm_users = warm_users[share:]
    measured = []
    settings = load_settings(env)
    for n, workload in enumerate(workloads):
        timed = users[n * args.emails:(n + 1) * args.emails]
        batch = workload.events(recipients, timed)
        pool.settle()
        drained = pool.drain(len(batch), args.emails, recorder(provider, publisher, batch),
                             lambda: sent(provider))
        print(f"  pool, {workload.name}: {drained.per_second:.1f} emails/s", file=sys.stderr, flush=True)
        messages = same_messages(env, Recipients(recipients.tenant_id, recipients.tenant_name, timed),
                                 workload, args.emails)
        smtplib_loop(port, sender_address(settings.mail_from), messages[:args.warmup])  # the same warm-up
        raw = smtplib_loop(port, sender_address(settings.mail_from), messages)
        print(f"  raw,  {workload.name}: {raw.per_second:.1f} emails/s", file=sys.stderr, flush=True)
        measured.append(Measured(workload, drained, raw))
    for consumer in pool.consumers:
        consumer.worker.stop()
    smtp.check()
    return measured


@dataclass(frozen=True)
class Pool:
    """The notifications pool under test: one or more workers on the queue, paused together."""

    consumers: list[Consumer]
    timeout: float

    def command(self, name: str) -> None:
        """``cancel_consumer`` or ``add_consumer`` on every worker (each answers once it took effect)."""
        for consumer in self.consumers:
            consumer._command(name)  # dispatch's remote-control call, shared

    def settle(self) -> None:
        """Wait until nothing is left in the queue (senders woken by the last run find nothing)."""
        lead = self.consumers[0]
        wait_for(lambda: lead.broker.llen(QUEUE) == 0, timeout=self.timeout, interval=0.05,
                 what=f"{QUEUE} to be empty", watch=[c.worker for c in self.consumers])

    def drain(self, events: int, count: int, send: Callable[[], None], completed: Callable[[], int]) -> Drain:
        """Queue ``events`` while no worker consumes, then time the pool until ``count`` emails
        are sent (as bench.dispatch drains)."""
        lead = self.consumers[0]
        target = completed() + count
        self.command("cancel_consumer")
        started = time.perf_counter()
        send()
        queued = time.perf_counter()
        wait_for(lambda: lead.broker.llen(QUEUE) == events, timeout=5, interval=0.01,
                 what=f"all {events} messages to wait in {QUEUE}")
        cpu = sum(cpu_seconds(c.worker.popen.pid) for c in self.consumers)
        resumed = time.perf_counter()
        self.command("add_consumer")
        wait_for(lambda: completed() >= target, timeout=self.timeout, what=f"{count} emails",
                 watch=[c.worker for c in self.consumers])
        elapsed = time.perf_counter() - resumed
        cpu_ms = (sum(cpu_seconds(c.worker.popen.pid) for c in self.consumers) - cpu) * 1000 / count
        return Drain(count, queued - started, elapsed, cpu_ms)


def report(measured: list[Measured]) -> int:
    """Print the figures, the target and the final line; the exit status (0: it measured)."""
    rows = []
    for m in measured:
        rows.append([f"pool, {m.workload.name}", m.pool.count, f"{m.pool.seconds:.2f}",
                     f"{m.pool.per_second:.1f}", f"{m.pool.worker_cpu_ms:.2f}", f"{m.ratio:.3f}"])
        rows.append(["plain smtplib loop, same messages", m.raw.count, f"{m.raw.seconds:.2f}",
                     f"{m.raw.per_second:.1f}", "-", ""])
    print(table(["path", "emails", "seconds", "emails/s", "worker cpu ms/email", "ratio"], rows))
    bulk, single = measured
    print(targets_line([Target("ratio", bulk.ratio, ">=", 0.5)]))
    print(final_line("notify", {"pool_per_s": bulk.pool.per_second, "raw_per_s": bulk.raw.per_second,
                                "ratio": bulk.ratio, "single_per_s": single.pool.per_second,
                                "single_ratio": single.ratio},
                     {"ratio": 3, "single_ratio": 3}), flush=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=1000, help="emails per workload (1000)")
    parser.add_argument("--fanout", type=int, default=100, help="readers per fan-out event (100)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up emails on each side (100)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children per worker (2)")
    parser.add_argument("--workers", type=int, default=1, help="worker instances in the pool (1)")
    parser.add_argument("--timeout", type=float, default=300.0, help="deadline of each wait, seconds (300)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help="PostgreSQL server URL; fresh databases are created on it and dropped")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (target met or not), 1 on errors."""
    args = parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack), report)


if __name__ == "__main__":
    sys.exit(main())
