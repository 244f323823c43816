"""Dispatch benchmark: messages per second through outbox -> worker -> inbox (the effect
committed) against plain Celery noop tasks on the same broker and pool, and the p50 latency
from the commit of a submit to the commit of its effect.

    .venv/bin/python -m bench.dispatch [--messages 3000] [--latency-messages 200]

Ours: events recorded with ``domain.messaging.outbox.record`` in real transactions on the
management database, sent by ``workers.publisher.publish`` and handled in a real ``celery
worker``. By default (``--handler welcome``) ``TenantProvisionedV1`` events handled by
``tasks.notifications.record_welcome_notice`` (the welcome email rendered and recorded on
the management database, then one inbox row + one notice row in the trial database);
``--handler edges`` measures the plane under the lightest handler there is,
``tasks.employment.remove_edges`` (one DELETE that finds nothing, the inbox row and the
outbox row's completion in one transaction on the management database).
Baseline: ``bench.apps:raw_celery``'s noop task, same configuration and worker options.
See bench/README.md.
"""
from __future__ import annotations

import argparse
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import redis
from celery import Celery
from sqlalchemy import select, text

from bench.apps import RAW_COUNTER
from bench.common import (
    DEFAULT_POSTGRES,
    BenchError,
    Child,
    Stack,
    Target,
    add_trial_tenant,
    cpu_seconds,
    final_line,
    percentile,
    run_bench,
    table,
    targets_line,
    wait_for,
)
from config.settings import load_settings
from domain.bootstrap import build_provider
from domain.db.base import utcnow
from domain.db.provider import MANAGEMENT, TRIAL, DataProvider
from domain.iam import services as iam
from domain.identity import services as identity
from domain.messaging import outbox
from domain.messaging.contracts import Contract
from domain.messaging.contracts.employment import EmployeeDeletedV1
from domain.messaging.contracts.tenancy import TenantProvisionedV1
from domain.messaging.outbox import Envelope
from domain.messaging.tables import inbox
from workers.publisher import publish, web_publisher, without_result_override

RAW_QUEUE = "default"
POLL_SECONDS = 0.002  # how often the latency run looks for the effect
ADMIN_EMAIL = "ada@example.com"  # every welcome's recipient (so past the hourly rate, throttled)


@dataclass(frozen=True)
class Handler:
    """The handler our messages go to: its event, its queue, and where its effect commits."""

    name: str      # as the inbox names it: the task's name without "tasks."
    queue: str
    database: str  # where its inbox row is committed with its effect
    event: Callable[[uuid.UUID, uuid.UUID], Contract]  # (tenant, its admin) -> one event


HANDLERS = {
    "welcome": Handler("notifications.record_welcome_notice", "notifications", TRIAL,
                       lambda tenant_id, admin_id: TenantProvisionedV1(
                           tenant_id=tenant_id, tenant_name="Bench Org", admin_user_id=admin_id,
                           admin_name="Ada Admin", admin_email=ADMIN_EMAIL)),
    # A random employee: no edges, so the effect is one DELETE that finds nothing.
    "edges": Handler("employment.remove_edges", "employment", MANAGEMENT,
                     lambda tenant_id, _: EmployeeDeletedV1(tenant_id=tenant_id, employee_id=uuid.uuid4())),
}


@dataclass(frozen=True)
class Drain:
    """``count`` messages queued while the worker was paused, and how long it took to consume them."""

    count: int
    send_seconds: float
    seconds: float
    worker_cpu_ms: float  # CPU of the worker (main process and pool) per message

    @property
    def per_second(self) -> float:
        """Messages completed per second, from the worker's resumption to the last one done."""
        return self.count / self.seconds


@dataclass(frozen=True)
class Consumer:
    """A worker under test and the queue it consumes; paused while a batch is queued."""

    worker: Child
    node: str
    queue: str
    control: Celery
    broker: redis.Redis
    timeout: float

    def warm(self, count: int, send: Callable[[], None], completed: Callable[[], int]) -> None:
        """Send ``count`` messages and wait until they are done (this also waits for the worker)."""
        target = completed() + count
        send()
        wait_for(lambda: completed() >= target, timeout=self.timeout, what=f"{count} warm-up messages",
                 watch=[self.worker])

    def drain(self, count: int, send: Callable[[], None], completed: Callable[[], int]) -> Drain:
        """Queue ``count`` messages while the worker does not consume, then time it consuming them.

        Sending while consuming would make the sender and the pool share the machine's cores
        and measure both; the send is timed on its own instead.
        """
        target = completed() + count
        self._command("cancel_consumer")
        started = time.perf_counter()
        send()
        sent = time.perf_counter()
        # The queue is a Redis list named after it. A BRPOP already in flight when the consumer
        # was cancelled may still pop one message, which kombu puts back ("no consumers"): wait
        # for the count to settle rather than read it once.
        wait_for(lambda: self.broker.llen(self.queue) == count, timeout=5, interval=0.01,
                 what=f"all {count} messages to wait in {self.queue}: if {self.node} consumed while "
                      "paused, the drain would not be timed whole")
        cpu = cpu_seconds(self.worker.popen.pid)
        resumed = time.perf_counter()
        self._command("add_consumer")
        wait_for(lambda: completed() >= target, timeout=self.timeout, what=f"{count} messages",
                 watch=[self.worker])
        elapsed = time.perf_counter() - resumed
        cpu_ms = (cpu_seconds(self.worker.popen.pid) - cpu) * 1000 / count
        return Drain(count, sent - started, elapsed, cpu_ms)

    def _command(self, name: str) -> None:
        # Celery's remote control, answered by the worker once it took effect.
        command = getattr(self.control.control, name)
        if not command(self.queue, destination=[self.node], reply=True, timeout=30):
            raise BenchError(f"{self.node} did not answer {name}")


@dataclass(frozen=True)
class Latencies:
    """Submit commit -> effect, in milliseconds, for messages sent one at a time."""

    to_effect_start: list[float]  # inbox.processed_at: the effect transaction's start (lower bound)
    to_completion: list[float]    # the effect's commit seen by this process, polling (upper bound)


def worker_argv(app: str, queue: str, name: str, concurrency: int) -> list[str]:
    """The same ``celery worker`` options for ours and the baseline (Procfile form + pool size)."""
    return [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queue, "-n", f"{name}@%h",
            "-P", "prefork", "-c", str(concurrency), "-l", "WARNING"]


def create_tenant(provider: DataProvider) -> tuple[uuid.UUID, uuid.UUID]:
    """A trial tenant for the events, its default roles and its admin, its owner, as
    provisioning leaves them (routing reads the tenant, the welcome its recipient and the
    recipient's standing in the tenant, from the management database)."""
    with provider.management() as session:
        tenant_id, _ = add_trial_tenant(session, "Bench Org")
        admin = identity.create_user(session, email=ADMIN_EMAIL, name="Ada Admin", password_hash=None)
        iam.create_default_roles(session, tenant_id)
        iam.grant_role(session, admin.id, tenant_id, "owner")
        session.commit()
    return tenant_id, admin.id


@dataclass(frozen=True)
class Ledger:
    """Our message plane as the benchmark drives it: one tenant, one publisher, one worker."""

    provider: DataProvider
    publisher: Celery
    handler: Handler
    tenant_id: uuid.UUID
    admin_id: uuid.UUID
    consumer: Consumer

    def submit(self) -> Envelope:
        """Record one event in its own transaction, as a handler emitting it does."""
        event = self.handler.event(self.tenant_id, self.admin_id)
        with self.provider.management() as session:
            (envelope,) = outbox.record(session, event, tenant_id=self.tenant_id, correlation_id=None)
            outbox.take_pending(session)  # published by the caller, when it chooses
            session.commit()
        return envelope

    def effects(self) -> int:
        """Committed effects so far: the handler's inbox rows."""
        with self.provider.unscoped(self.handler.database) as session:
            return int(session.scalar(text("SELECT count(*) FROM inbox WHERE handler = :h"),
                                      {"h": self.handler.name}))

    def send(self, count: int) -> Callable[[], None]:
        """Record ``count`` messages now (untimed); return the call that publishes them."""
        envelopes = [self.submit() for _ in range(count)]

        def publish_all() -> None:
            if publish(self.publisher, envelopes) != count:
                raise BenchError("publishing to the broker failed")

        return publish_all

    def latency(self, count: int) -> Latencies:
        """Submit and publish ``count`` messages one at a time, as a request would, each
        after the previous one's effect: latency without queueing behind other messages."""
        committed: dict[uuid.UUID, datetime] = {}
        seen: dict[uuid.UUID, datetime] = {}
        # The effect's commit is seen when its inbox row becomes visible to this process:
        # one SELECT per poll on a connection of its own in autocommit (no session, no
        # BEGIN), so the watching costs the machine little and adds little to the figure.
        url = self.provider.url_of(self.handler.database).replace("+psycopg", "")
        with psycopg.connect(url, autocommit=True) as watcher:
            for _ in range(count):
                envelope = self.submit()
                delivery = uuid.UUID(envelope.id)
                committed[delivery] = utcnow()
                publish(self.publisher, [envelope])
                wait_for(lambda d=delivery: handled(watcher, d), timeout=self.consumer.timeout,
                         what=f"message {delivery}", interval=POLL_SECONDS, watch=[self.consumer.worker])
                seen[delivery] = utcnow()
        return self._latencies(committed, seen)

    def _latencies(self, committed: dict[uuid.UUID, datetime], seen: dict[uuid.UUID, datetime]) -> Latencies:
        # processed_at is now() in the effect's transaction: when it started.
        with self.provider.unscoped(self.handler.database) as session:
            started = session.execute(select(inbox.c.message_id, inbox.c.processed_at)
                                      .where(inbox.c.message_id.in_(committed))).all()
        if len(started) != len(committed):
            raise BenchError("some effects are missing")
        return Latencies(
            [(at - committed[delivery]).total_seconds() * 1000 for delivery, at in started],
            [(seen[d] - at).total_seconds() * 1000 for d, at in committed.items()])


def handled(watcher: psycopg.Connection[Any], delivery: uuid.UUID) -> bool:
    """True once the delivery's inbox row is committed."""
    return watcher.execute("SELECT 1 FROM inbox WHERE message_id = %s", (delivery,)).fetchone() is not None


def send_noops(publisher: Celery, count: int) -> Callable[[], None]:
    """The call that sends ``count`` noop tasks the way ``publish`` sends ours."""

    def send() -> None:
        with publisher.producer_or_acquire() as producer:
            for _ in range(count):
                # Celery's task message straight to the queue, as workers.publisher.publish does.
                message = publisher.amqp.as_task_v2(str(uuid.uuid4()), "bench.noop", args=[], kwargs={})
                without_result_override(message.headers)  # the noop's own ignore_result holds
                producer.publish(message.body, exchange="", routing_key=RAW_QUEUE, headers=message.headers,
                                 serializer="json", **message.properties)

    return send


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="messages per throughput run (3000)")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up messages per worker (200)")
    parser.add_argument("--latency-messages", type=int, default=200,
                        help="messages sent one at a time for the latency figure (200)")
    parser.add_argument("--handler", choices=sorted(HANDLERS), default="welcome",
                        help="our messages' handler: the welcome notice (default), or the lightest "
                             "there is, the employment graph's clean-up (edges)")
    parser.add_argument("--concurrency", type=int, default=2, help="prefork children per worker (2)")
    parser.add_argument("--timeout", type=float, default=180.0, help="deadline of each wait, seconds (180)")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help="PostgreSQL server URL; fresh databases are created on it and dropped")
    parser.add_argument("--raw-results", action="store_true",
                        help="let the baseline noop store its result and STARTED state, as ours do")
    return parser.parse_args(argv)


def start_consumer(stack: Stack, app: str, queue: str, name: str, *, env: dict[str, str],
                   args: argparse.Namespace, control: Celery, broker: redis.Redis) -> Consumer:
    """Start ``celery -A app worker`` on ``queue`` with the options both sides share."""
    worker = stack.spawn(f"worker-{name}", worker_argv(app, queue, name, args.concurrency), env)
    return Consumer(worker, f"{name}@{socket.gethostname()}", queue, control, broker, args.timeout)


def measure(args: argparse.Namespace, stack: Stack) -> tuple[Drain, Latencies, Drain]:
    """Run ours, then the baseline, each with its own worker started with the same options."""
    server = stack.start_redis()
    databases = stack.create_databases()
    env = stack.env(databases, LOG_LEVEL="WARNING", WORKER_CONCURRENCY=str(args.concurrency),
                    BENCH_RAW_RESULTS="1" if args.raw_results else "0")
    provider = build_provider(load_settings(env))
    stack.on_close(provider.dispose)
    publisher = web_publisher(server.url(0), server.url(1))  # what the web tier sends with
    stack.on_close(publisher.close)
    tenant_id, admin_id = create_tenant(provider)

    broker = redis.Redis.from_url(server.url(0))
    stack.on_close(broker.close)
    handler = HANDLERS[args.handler]
    ours = start_consumer(stack, "workers.app", handler.queue, "ledger", env=env, args=args,
                          control=publisher, broker=broker)
    plane = Ledger(provider, publisher, handler, tenant_id, admin_id, ours)
    ours.warm(args.warmup, plane.send(args.warmup), plane.effects)
    ledger = ours.drain(args.messages, plane.send(args.messages), plane.effects)
    print(f"  ledger: {ledger.per_second:.1f} messages/s", file=sys.stderr, flush=True)
    latencies = plane.latency(args.latency_messages)
    ours.worker.stop()
    stack.flush_broker()

    baseline = start_consumer(stack, "bench.apps:raw_celery", RAW_QUEUE, "raw", env=env, args=args,
                              control=publisher, broker=broker)

    def ran() -> int:
        return int(broker.get(RAW_COUNTER) or 0)

    baseline.warm(args.warmup, send_noops(publisher, args.warmup), ran)
    raw = baseline.drain(args.messages, send_noops(publisher, args.messages), ran)
    print(f"  raw:    {raw.per_second:.1f} tasks/s", file=sys.stderr, flush=True)
    baseline.worker.stop()
    return ledger, latencies, raw


def report(handler: str, ledger: Drain, latencies: Latencies, raw: Drain) -> int:
    """Print the figures, the targets and the final line; the exit status (0: it measured)."""
    print(table(["path", "messages", "send s", "drain s", "per s", "worker cpu ms/msg"],
                [[name, d.count, f"{d.send_seconds:.2f}", f"{d.seconds:.2f}", f"{d.per_second:.1f}",
                  f"{d.worker_cpu_ms:.2f}"]
                 for name, d in ((f"ledger ({handler})", ledger), ("raw celery noop", raw))]))
    print()
    print(f"latency, submit commit -> effect, {len(latencies.to_completion)} messages one at a time:")
    bounds = (("effect transaction start (inbox.processed_at)", latencies.to_effect_start),
              (f"effect commit seen ({POLL_SECONDS * 1000:g} ms polls)", latencies.to_completion))
    print(table(["measured to", "p50 ms", "p90 ms", "p99 ms"],
                [[label, *(f"{percentile(values, p):.1f}" for p in (50, 90, 99))]
                 for label, values in bounds]))
    figures = {"ledger_per_s": ledger.per_second, "raw_per_s": raw.per_second,
               "ratio": ledger.per_second / raw.per_second,
               "p50_ms": percentile(latencies.to_completion, 50)}
    print(targets_line([Target("ratio", figures["ratio"], ">=", 0.5),
                        Target("p50_ms", figures["p50_ms"], "<=", 15.0)]))
    print(final_line("dispatch", figures, {"ratio": 3}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (targets met or not), 1 on errors."""
    args = parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack),
                     lambda figures: report(args.handler, *figures))


if __name__ == "__main__":
    sys.exit(main())
