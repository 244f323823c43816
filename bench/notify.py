"""Notify benchmark: emails per second through the notifications pool to a local SMTP server,
against a plain ``smtplib`` loop sending the same messages to the same server, same run.

    .venv/bin/python -m bench.notify [--emails 1000] [--concurrency 2] [--workers 1]

The SMTP server is aiosmtpd's ``Sink`` handler in a process of its own on 127.0.0.1 (it
accepts and discards). Ours: ``AssetProcessedV1`` events (one per recipient, so no one is
throttled), recorded in the management outbox and published while the worker is paused,
then handled by a real ``celery -A workers.app worker -Q notifications``: recipients
resolved, the notice written, the email rendered (Jinja2, both parts, in the recipient's
language) and sent through the kept SMTP connection, its delivery row claimed before and
settled after. An email counts once its row says ``sent`` (the server acknowledged it).
Baseline: one ``smtplib.SMTP`` connection in this process sending the same rendered messages
(built before the clock starts) one after the other. See bench/README.md.
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
from domain.identity.models import User
from domain.messaging import outbox
from domain.messaging.contracts.assets import AssetProcessedV1
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
    """A trial tenant and ``count`` accounts (one insert)."""
    with provider.management() as session:
        tenant_id, _ = add_trial_tenant(session, "Bench Mail Org")
        users = [(uuid.uuid4(), f"bench-{i:06d}-{uuid.uuid4().hex[:6]}@example.com") for i in range(count)]
        rows = [{"id": u, "email": e, "name": f"Reader {i}", "password_hash": None, "is_operator": False,
                 "active": True} for i, (u, e) in enumerate(users)]
        session.execute(insert(User), rows)
        session.commit()
    return Recipients(tenant_id, "Bench Mail Org", users)


def events(recipients: Recipients, users: list[tuple[uuid.UUID, str]]) -> list[AssetProcessedV1]:
    """One "your file is ready" event per user."""
    return [AssetProcessedV1(asset_id=uuid.uuid4(), tenant_id=recipients.tenant_id, owner_id=user_id,
                             filename=f"scan-{i:05d}.pdf", status="ready")
            for i, (user_id, _) in enumerate(users)]


def recorder(provider: DataProvider, publisher: Celery, batch: list[AssetProcessedV1]) -> Callable[[], None]:
    """Record ``batch`` in the outbox now (untimed, 100 a transaction); the call that publishes it."""
    envelopes: list[Envelope] = []
    for start in range(0, len(batch), 100):
        with provider.management() as session:
            for event in batch[start:start + 100]:
                envelopes += outbox.record(session, event, tenant_id=event.tenant_id, correlation_id=None)
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


def same_messages(settings_env: dict[str, str], recipients: Recipients,
                  count: int) -> list[tuple[str, Message]]:
    """The messages the pool sent, rendered and built the same way, ready to go (untimed)."""
    settings = load_settings(settings_env)
    translate = Translator("en", build_catalogues(settings))
    renderer, public_url = JinjaEmailRenderer(), settings.public_url
    built = []
    for i, (_user_id, email) in enumerate(recipients.users[:count]):
        params = {"filename": f"scan-{i:05d}.pdf", "reason": ""}
        title = translate(texts.ASSET_READY.title, **params)
        body = translate(texts.ASSET_READY.body, **params)
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


def measure(args: argparse.Namespace, stack: Stack) -> tuple[Drain, Raw]:
    """Start the SMTP server, run the pool, then the plain loop on the same server."""
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
    recipients = seed(provider, args.warmup + args.emails)
    warm_users, timed_users = recipients.users[:args.warmup], recipients.users[args.warmup:]

    pool = Pool([start_consumer(stack, "workers.app", QUEUE, f"notify{i}", env=env, args=args,
                                control=publisher, broker=broker) for i in range(args.workers)], args.timeout)
    for consumer in pool.consumers:  # each worker answers the warm-up: all of them are up
        consumer.warm(args.warmup // args.workers, recorder(provider, publisher, events(
            recipients, warm_users[:args.warmup // args.workers])), lambda: sent(provider))
        warm_users = warm_users[args.warmup // args.workers:]
    drained = pool.drain(args.emails, recorder(provider, publisher, events(recipients, timed_users)),
                         lambda: sent(provider))
    print(f"  pool: {drained.per_second:.1f} emails/s", file=sys.stderr, flush=True)
    for consumer in pool.consumers:
        consumer.worker.stop()

    messages = same_messages(env, Recipients(recipients.tenant_id, recipients.tenant_name, timed_users),
                             args.emails)
    settings = load_settings(env)
    smtplib_loop(port, sender_address(settings.mail_from), messages[:args.warmup])  # the same warm-up
    raw = smtplib_loop(port, sender_address(settings.mail_from), messages)
    print(f"  raw:  {raw.per_second:.1f} emails/s", file=sys.stderr, flush=True)
    smtp.check()
    return drained, raw


@dataclass(frozen=True)
class Pool:
    """The notifications pool under test: one or more workers on the queue, paused together."""

    consumers: list[Consumer]
    timeout: float

    def command(self, name: str) -> None:
        """``cancel_consumer`` or ``add_consumer`` on every worker (each answers once it took effect)."""
        for consumer in self.consumers:
            consumer._command(name)  # dispatch's remote-control call, shared

    def drain(self, count: int, send: Callable[[], None], completed: Callable[[], int]) -> Drain:
        """Queue ``count`` while no worker consumes, then time them consuming it (as bench.dispatch)."""
        lead = self.consumers[0]
        target = completed() + count
        self.command("cancel_consumer")
        started = time.perf_counter()
        send()
        queued = time.perf_counter()
        wait_for(lambda: lead.broker.llen(QUEUE) == count, timeout=5, interval=0.01,
                 what=f"all {count} messages to wait in {QUEUE}")
        cpu = sum(cpu_seconds(c.worker.popen.pid) for c in self.consumers)
        resumed = time.perf_counter()
        self.command("add_consumer")
        wait_for(lambda: completed() >= target, timeout=self.timeout, what=f"{count} emails",
                 watch=[c.worker for c in self.consumers])
        elapsed = time.perf_counter() - resumed
        cpu_ms = (sum(cpu_seconds(c.worker.popen.pid) for c in self.consumers) - cpu) * 1000 / count
        return Drain(count, queued - started, elapsed, cpu_ms)


def report(pool: Drain, raw: Raw) -> int:
    """Print the figures, the target and the final line; the exit status (0: it measured)."""
    print(table(["path", "emails", "seconds", "emails/s", "worker cpu ms/email"], [
        ["notifications pool (event -> notice + email)", pool.count, f"{pool.seconds:.2f}",
         f"{pool.per_second:.1f}", f"{pool.worker_cpu_ms:.2f}"],
        ["plain smtplib loop, one connection", raw.count, f"{raw.seconds:.2f}", f"{raw.per_second:.1f}", "-"],
    ]))
    ratio = pool.per_second / raw.per_second
    print(targets_line([Target("ratio", ratio, ">=", 0.5)]))
    print(final_line("notify", {"pool_per_s": pool.per_second, "raw_per_s": raw.per_second, "ratio": ratio},
                     {"ratio": 3}), flush=True)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__.split("\n")[0])
    parser.add_argument("--emails", type=int, default=1000, help="emails per run (1000)")
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
    return run_bench(args.postgres, lambda stack: measure(args, stack), lambda figures: report(*figures))


if __name__ == "__main__":
    sys.exit(main())
