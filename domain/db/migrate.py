"""Alembic runner for the two environments: ``management`` and ``tenant`` (DESIGN §3).

Used by the CLI, the run command, the tenancy worker's migrate-all group, and tests.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url

Environment = Literal["management", "tenant"]
# Held by every migration for its whole transaction (advisory locks are per database), so
# two migrators of one database run one after the other; the second then finds it at head.
# A tenant promotion holds it shared on the trial database while it moves a tenant, so a
# migration waits there (holding no table lock) instead of queueing its ALTER TABLE behind
# the copy's snapshot, with every trial tenant's queries queued behind the ALTER.
LOCK_KEY = 0x616C6C6F746D6E74  # "allotmnt"
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# environment -> (mtime of its versions folder, head revision): see head().
_heads: dict[str, tuple[int, str | None]] = {}


@dataclass(frozen=True)
class MigrationResult:
    """What upgrading one database did."""

    before: str | None
    after: str | None
    duration_ms: int
    skipped: bool


def alembic_config(environment: Environment, url: str, tenant_role: str = "") -> Config:
    """An Alembic Config for one environment and database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS / environment))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["tenant_role"] = tenant_role
    return config


def head(environment: Environment) -> str | None:
    """The head revision of an environment.

    Cached per process until the environment's ``versions`` folder changes (adding a
    revision file changes its mtime): migrate-all asks once per database, and parsing
    every revision script each time would cost more than the skip it decides.
    """
    versions = MIGRATIONS / environment / "versions"
    stamp = versions.stat().st_mtime_ns
    cached = _heads.get(environment)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    found = _script(environment).get_current_head()
    _heads[environment] = (stamp, found)
    return found


def revision_before_head(environment: Environment) -> str | None:
    """The revision the head revision revises (None when head is the first revision)."""
    script = _script(environment)
    current = script.get_revision(script.get_current_head())
    down = current.down_revision if current is not None else None
    if isinstance(down, tuple):  # a merge revision: there is no single previous one
        raise ValueError(f"the {environment} head {current.revision} merges {down}")
    return down


def _script(environment: Environment) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(environment, "postgresql://x/y"))


def current_revision(url: str, connect_timeout: int = 10) -> str | None:
    """The revision a database is at (None if never migrated).

    One connection and one query, straight through psycopg: SQLAlchemy's first connect
    of a new engine runs its own dialect queries and Alembic's MigrationContext checks
    the version table before reading it, which made this the dearest part of a skip.
    """
    with psycopg.connect(_dsn(url), autocommit=True, connect_timeout=connect_timeout) as conn:
        try:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        except psycopg.errors.UndefinedTable:
            return None
    if len(rows) > 1:  # both environments are linear; several heads means a broken table
        raise ValueError(f"several revisions recorded: {sorted(r[0] for r in rows)}")
    return rows[0][0] if rows else None


def upgrade(environment: Environment, url: str, tenant_role: str = "",
            revision: str = "head") -> MigrationResult:
    """Upgrade one database to ``revision`` (head by default); cheap when it is already there.

    One migration at a time per process: Alembic keeps its running context in module
    globals, so concurrent upgrades belong in separate processes (Celery's prefork pool).
    Concurrent migrators of one database serialise on the env's advisory lock.
    """
    started = time.monotonic()
    before = current_revision(url)
    target = head(environment) if revision == "head" else revision
    if before == target:
        return MigrationResult(before, before, int((time.monotonic() - started) * 1000), True)
    command.upgrade(alembic_config(environment, url, tenant_role), revision)
    after = current_revision(url)
    return MigrationResult(before, after, int((time.monotonic() - started) * 1000), False)


@contextmanager
def migrations_wait(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Hold ``LOCK_KEY`` shared on ``conn``'s database (an autocommit connection) for the
    block: a migration of that database waits at its advisory lock, holding no table lock,
    instead of queueing an ALTER TABLE behind the block's long snapshot with every other
    tenant's queries queued behind the ALTER. Take it before any lock the tenant's writes
    wait for, so that a migration waiting here holds nothing they need."""
    conn.execute("SELECT pg_advisory_lock_shared(%s)", (LOCK_KEY,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (LOCK_KEY,))


def _dsn(url: str | URL) -> str:
    """A libpq connection string for the database of a SQLAlchemy URL (query options kept)."""
    parsed = make_url(url)
    args: dict[str, Any] = parsed.translate_connect_args(username="user", database="dbname")
    args.update({key: value if isinstance(value, str) else value[-1] for key, value in parsed.query.items()})
    return make_conninfo(**args)


def _libpq(url: str) -> tuple[str, str]:
    """(libpq connection string for the server's maintenance db, database name)."""
    parsed = make_url(url)
    return _dsn(parsed.set(database="postgres")), parsed.database or ""


def _quoted(name: str) -> str:
    """A database name as a quoted SQL identifier (CREATE/DROP DATABASE take no parameters)."""
    return '"' + name.replace('"', '""') + '"'


def ensure_database(url: str) -> bool:
    """Create the database of ``url`` if it does not exist; True if it was created."""
    dsn, name = _libpq(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(f"CREATE DATABASE {_quoted(name)}")
        except psycopg.errors.DuplicateDatabase:
            return False
    return True


def drop_database(url: str) -> None:
    """Drop the database of ``url`` (closing its connections)."""
    dsn, name = _libpq(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")


def prepare(database_url: str, trial_database_url: str, tenant_role: str) -> dict[str, MigrationResult]:
    """Create the management and trial databases if missing and upgrade both to head."""
    ensure_database(database_url)
    ensure_database(trial_database_url)
    return {
        "management": upgrade("management", database_url),
        "trial": upgrade("tenant", trial_database_url, tenant_role),
    }
