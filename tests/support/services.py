"""The PostgreSQL and Redis servers the suite runs against.

TEST_DATABASE_URL / TEST_REDIS_URL name real servers (CI uses the machine's); when they are
unset the embedded servers are started under var/test/. A configured server that does not
answer fails the run: integration tests are never skipped for a missing service. Under
pytest-xdist, every process but the first also starts a redis-server of its own.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

from config.settings import database_on
from domain.db import migrate
from workers import embedded

ROOT = Path(__file__).resolve().parents[2]

# Every Redis database the suite uses, in one place so that no two overlap (a stack takes
# its number and the next: broker and result backend).
REDIS_DB_E2E = 4          # the chaos stack (4, 5)
REDIS_DB_SESSION = 10     # the session's stack (10, 11)
REDIS_DB_DB_ISOLATION = 12  # tests/integration/db's own stack (12, 13)
REDIS_DB_METRICS_IDLE = 14  # a broker database no worker consumes (metrics)
REDIS_DB_BACKLOG_IDLE = 15  # a broker database no worker consumes (relay backlog)
REDIS_DB_OFFLINE = 6      # a broker database no worker listens on until a test starts one


@dataclass
class Services:
    """Where the servers are, and how to stop those the suite started."""

    server_url: str          # SQLAlchemy URL of the server's maintenance database
    redis_url: str           # redis://host:port (no database number)
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop what the suite started."""
        for stop in reversed(self.stoppers):
            stop()


class ServiceMissing(Exception):
    """A configured service cannot be reached."""


def _check_postgres(url: str) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        psycopg.connect(dsn, connect_timeout=5).close()
    except psycopg.Error as exc:
        raise ServiceMissing(f"TEST_DATABASE_URL {url!r} is not reachable: {exc}") from exc


def _check_redis(url: str) -> None:
    try:
        redis.Redis.from_url(url, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise ServiceMissing(f"TEST_REDIS_URL {url!r} is not reachable: {exc}") from exc


def start_services() -> Services:
    """Use the configured servers, or start embedded ones."""
    pg_url, redis_url = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    services = Services("", "")
    if pg_url:
        pg_url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
        _check_postgres(pg_url)
        services.server_url = pg_url
    else:
        postgres = embedded.start_postgres(ROOT / "var" / "test" / "pg")
        services.stoppers.append(postgres.stop)
        services.server_url = postgres.url("postgres")
    if redis_url:
        _check_redis(redis_url)
    # The suite gives each kind of stack a fixed Redis database (REDIS_DB_*): a second
    # pytest-xdist process takes a redis-server of its own, so no two processes' stacks
    # share a broker.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if redis_url and worker in ("", "gw0"):
        services.redis_url = redis_url.rstrip("/")
    else:
        data_dir = ROOT / "var" / "test" / f"redis-{worker or 'main'}"
        server = embedded.start_redis(data_dir, embedded.free_port())
        services.stoppers.append(server.stop)
        services.redis_url = f"redis://127.0.0.1:{server.port}"
    return services


@dataclass
class SecondServer:
    """A second PostgreSQL server (pgserver wheel) for placement across servers."""

    url: str                 # SQLAlchemy URL of its maintenance database (unix socket)
    stop: Callable[[], None]


def start_second_server(data_dir: Path) -> SecondServer:
    """Start a PostgreSQL 16 server of its own under ``data_dir``, beside the suite's."""
    postgres = embedded.start_postgres(data_dir)
    return SecondServer(postgres.url("postgres"), postgres.stop)


@dataclass
class Stack:
    """One isolated set of databases and Redis databases for a test run."""

    database_url: str
    trial_database_url: str
    broker_url: str
    result_backend: str

    def env(self, **extra: str) -> dict[str, str]:
        """Environment variables that point a process at this stack."""
        return {
            "ENV": "test", "SECRET_KEY": "test-secret-key-not-for-production-0123456789",
            "DATABASE_URL": self.database_url, "TRIAL_DATABASE_URL": self.trial_database_url,
            "BROKER_URL": self.broker_url, "RESULT_BACKEND": self.result_backend,
            "COOKIE_SECURE": "false", "LOG_LEVEL": "INFO",
            # The suite signs in and up far more often than a person; the limits have
            # their own tests (tests/integration/web/test_rate_limits.py).
            "RATE_LIMIT_SIGN_IN": "100000 per minute", "RATE_LIMIT_SIGN_UP": "100000 per minute",
            "RATE_LIMIT_INVITATIONS": "100000 per minute", "RATE_LIMIT_PASSWORD_RESET": "100000 per minute",
            # Hashing and verifying with RFC 9106's parameters costs a quarter of a second of
            # CPU: the suite signs in and provisions thousands of times. The run command's
            # end-to-end test keeps the default (tests/unit/identity checks both profiles).
            "PASSWORD_HASH_PROFILE": "cheapest",
            # Every process of every stack keeps its pools' idle connections to one server
            # whose max_connections is 100 here (2 x-dist workers, each with its web apps,
            # workers and second stacks): at 5 a pool the suite peaked at 98. Two idle a
            # pool, up to 7 in use as before (max_overflow is 5).
            "DB_POOL_SIZE": "2",
            **extra,
        }


def create_stack(services: Services, redis_db: int, tenant_role: str = "allotment_tenant") -> Stack:
    """Fresh management and trial databases, migrated; two flushed Redis databases."""
    name = f"allot_test_{secrets.token_hex(4)}"
    stack = Stack(
        database_url=database_on(services.server_url, name),
        trial_database_url=database_on(services.server_url, f"{name}_trial"),
        broker_url=f"{services.redis_url}/{redis_db}",
        result_backend=f"{services.redis_url}/{redis_db + 1}",
    )
    migrate.prepare(stack.database_url, stack.trial_database_url, tenant_role)
    for url in (stack.broker_url, stack.result_backend):
        redis.Redis.from_url(url).flushdb()
    return stack


def drop_stack(stack: Stack) -> None:
    """Drop the stack's databases."""
    for url in (stack.database_url, stack.trial_database_url):
        migrate.drop_database(url)
