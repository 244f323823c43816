"""Chaos for the reliability test: a signup load in the background, worker kills and a broker
flush fired at random points of progress, and the ledger of what the system did, read from
its databases (rows, never log lines)."""
from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from flask import Flask

from tests.support import processes, refs
from tests.support.services import Stack
from tests.support.waiting import wait_for

# Short leases and a fast relay, so re-sends happen within the test (config/settings.py names).
SETTINGS = {"MESSAGE_LEASE_SECONDS": "3", "RELAY_INTERVAL_SECONDS": "1"}


@dataclass(frozen=True)
class Submission:
    """One signup request and the web app's answer."""

    body: dict[str, str]
    status: int
    signup_id: str | None


class SignupLoad(threading.Thread):
    """Submit signups through the web app in the background, a steady stream rather than one burst.

    At most ``window`` signups are ahead of the provisioned ones (read from the stack's
    database), so submissions go on during the whole run and the kills land among them.
    """

    def __init__(self, app: Flask, stack: Stack, count: int, window: int) -> None:
        super().__init__(name="signup-load", daemon=True)
        self.app, self.stack, self.window = app, stack, window
        self.bodies = [refs.signup_body() for _ in range(count)]
        self.submissions: list[Submission] = []
        self.error: BaseException | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        """Post every signup; keep the first error for :meth:`result`."""
        client = self.app.test_client()
        ledger = Ledger(self.stack)  # a connection of this thread's own
        try:
            for body in self.bodies:
                wait_for(lambda: self.submitted - ledger.provisioned() < self.window, timeout=300,
                         message="provisioning to catch up with the signups")
                response = client.post("/api/v1/tenancy/signups", json=body)
                answer = response.get_json(silent=True) or {}
                self.submissions.append(Submission(body, response.status_code, answer.get("id")))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by result()
            self.error = exc
        finally:
            ledger.close()
        self.finished_at = time.monotonic()

    @property
    def submitted(self) -> int:
        """How many requests were answered so far."""
        return len(self.submissions)

    def result(self, timeout: float) -> list[Submission]:
        """Every submission, once the load is done; its error if it failed."""
        self.join(timeout)
        if self.is_alive():
            raise AssertionError(f"the signup load is still running after {timeout}s")
        if self.error is not None:
            raise self.error
        return self.submissions


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@dataclass(frozen=True)
class Snapshot:
    """Where the run stands; truthy once all ``total`` signups are provisioned and welcomed
    and every outbox delivery is completed."""

    total: int
    provisioned: int
    welcomed: int
    open_deliveries: int
    dead_deliveries: int

    def __bool__(self) -> bool:
        return self.provisioned == self.welcomed == self.total and self.open_deliveries == 0


class Ledger:
    """Counts read from the stack's databases as their owner (past the trial database's RLS)."""

    def __init__(self, stack: Stack) -> None:
        self.management = psycopg.connect(_dsn(stack.database_url), autocommit=True)
        self.trial = psycopg.connect(_dsn(stack.trial_database_url), autocommit=True)

    def close(self) -> None:
        """Close both connections."""
        self.management.close()
        self.trial.close()

    @staticmethod
    def _scalar(conn: psycopg.Connection[Any], sql: str, *params: Any) -> Any:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def provisioned(self) -> int:
        """Signups the tenancy worker provisioned."""
        return int(self._scalar(self.management, "SELECT count(*) FROM signups WHERE status = 'provisioned'"))

    def welcomed(self) -> int:
        """Welcome notices the notifications worker recorded."""
        return int(self._scalar(self.trial, "SELECT count(*) FROM notices WHERE category = 'welcome'"))

    def outbox(self, condition: str) -> int:
        """Outbox rows matching ``condition``, in both databases."""
        sql = f"SELECT count(*) FROM outbox WHERE {condition}"
        return int(self._scalar(self.management, sql)) + int(self._scalar(self.trial, sql))

    def snapshot(self, total: int) -> Snapshot:
        """The counts that say whether the run converged."""
        return Snapshot(total, self.provisioned(), self.welcomed(),
                        self.outbox("completed_at IS NULL"), self.outbox("dead_at IS NOT NULL"))

    def resends(self) -> int:
        """Deliveries the relay re-sent, in both databases."""
        sql = "SELECT coalesce(sum(attempts), 0) FROM outbox"
        return int(self._scalar(self.management, sql)) + int(self._scalar(self.trial, sql))

    def signup_statuses(self, signup_ids: list[str]) -> Counter[str]:
        """How many of ``signup_ids`` are in each status."""
        rows = self.management.execute(
            "SELECT status, count(*) FROM signups WHERE id = ANY(%s::uuid[]) GROUP BY status", (signup_ids,))
        return Counter(dict(rows.fetchall()))

    def users_by_email(self, emails: list[str]) -> dict[str, list[str]]:
        """User ids for each of ``emails`` (one each when provisioned exactly once)."""
        rows = self.management.execute(
            "SELECT email, array_agg(id::text) FROM users WHERE email = ANY(%s) GROUP BY email", (emails,))
        return dict(rows.fetchall())

    def memberships(self, tenant_ids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """(user id, role name) of each membership of ``tenant_ids``."""
        rows = self.management.execute(
            "SELECT m.tenant_id::text, m.user_id::text, r.name FROM memberships m"
            " JOIN roles r ON r.id = m.role_id WHERE m.tenant_id = ANY(%s::uuid[])", (tenant_ids,))
        found: dict[str, list[tuple[str, str]]] = {}
        for tenant_id, user_id, role in rows.fetchall():
            found.setdefault(tenant_id, []).append((user_id, role))
        return found

    def role_counts(self, tenant_ids: list[str]) -> Counter[int]:
        """How many tenants have each number of roles."""
        rows = self.management.execute(
            "SELECT count(*) FROM roles WHERE tenant_id = ANY(%s::uuid[]) GROUP BY tenant_id", (tenant_ids,))
        return Counter(n for (n,) in rows.fetchall())

    def welcome_notices(self, tenant_ids: list[str]) -> dict[str, list[str]]:
        """The user id of each welcome notice of ``tenant_ids``."""
        rows = self.trial.execute(
            "SELECT tenant_id::text, array_agg(user_id::text) FROM notices"
            " WHERE category = 'welcome' AND tenant_id = ANY(%s::uuid[]) GROUP BY tenant_id", (tenant_ids,))
        return dict(rows.fetchall())

    def tenant_ids(self, signup_ids: list[str]) -> dict[str, str]:
        """Tenant id of each signup."""
        rows = self.management.execute(
            "SELECT id::text, tenant_id::text FROM signups WHERE id = ANY(%s::uuid[])", (signup_ids,))
        return dict(rows.fetchall())


@dataclass
class Chaos:
    """Kills and restarts real workers, flushes the broker, and keeps a log of what it did."""

    workers: dict[str, processes.Process]
    broker_url: str
    started: float = field(default_factory=time.monotonic)
    kills: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        """Record an action with the seconds since the chaos started."""
        self.log.append(f"{time.monotonic() - self.started:6.1f}s {what}")

    def kill(self, name: str, progress: str) -> None:
        """SIGKILL a worker and its pool children."""
        self.workers[name].kill()
        self.kills[name] += 1
        self.note(f"killed {name} at {progress}")

    def restart(self, name: str) -> None:
        """Start a killed worker again and wait until it consumes."""
        worker = self.workers[name]
        worker.start()
        processes.wait_until_ready(worker, f"{name}@{socket.gethostname()}", timeout=120)
        self.note(f"restarted {name}")

    def queued(self, queue: str) -> int:
        """Messages waiting in a broker queue."""
        with redis.Redis.from_url(self.broker_url) as broker:
            return int(broker.llen(queue))

    def flush_broker(self) -> None:
        """FLUSHDB on the broker database: every queued and unacknowledged message is gone."""
        lost = self.queued("tenancy")
        with redis.Redis.from_url(self.broker_url) as broker:
            broker.flushdb()
        self.note(f"FLUSHDB of the broker ({lost} messages queued for tenancy)")


@dataclass(frozen=True)
class Kill:
    """Kill ``worker`` once ``metric`` reaches ``at``; flush the broker while it is down if ``flush``."""

    worker: str
    metric: str
    at: int
    flush: bool = False


def plan(rng: random.Random, total: int, kills_each: int = 3) -> list[Kill]:
    """Random kill points in the middle of the run; the broker is flushed during one tenancy kill."""
    middle = range(total // 20, total * 4 // 5)
    flush_on = rng.randrange(kills_each)
    return ([Kill("tenancy", "provisioned", at, i == flush_on)
             for i, at in enumerate(sorted(rng.sample(middle, kills_each)))]
            + [Kill("notifications", "welcomed", at) for at in sorted(rng.sample(middle, kills_each))])


def run(chaos: Chaos, ledger: Ledger, kills: list[Kill], step_timeout: float = 180.0) -> None:
    """Fire each kill when its progress point is reached; restart the worker right after."""
    pending = list(kills)
    counts = {"provisioned": ledger.provisioned, "welcomed": ledger.welcomed}
    while pending:
        due = wait_for(lambda: [k for k in pending if counts[k.metric]() >= k.at],
                       timeout=step_timeout, interval=0.1, message=f"progress to reach {pending}")
        for kill in due:
            chaos.kill(kill.worker, f"{kill.metric}={counts[kill.metric]()}")
            if kill.flush:
                # While the tenancy worker is down its queue fills (new signups, relay re-sends):
                # the flush is sure to destroy messages.
                wait_for(lambda: chaos.queued("tenancy") > 0, timeout=60, message="tenancy messages queued")
                chaos.flush_broker()
            chaos.restart(kill.worker)
            pending.remove(kill)
