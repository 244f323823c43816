"""Alembic runner for the two environments: ``management`` and ``tenant`` (DESIGN §3).

Used by the CLI, the run command, the tenancy worker's migrate-all group, and tests.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

Environment = Literal["management", "tenant"]
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


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
    """The head revision of an environment."""
    script = ScriptDirectory.from_config(alembic_config(environment, "postgresql://x/y"))
    return script.get_current_head()


def current_revision(url: str) -> str | None:
    """The revision a database is at (None if never migrated)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(environment: Environment, url: str, tenant_role: str = "") -> MigrationResult:
    """Upgrade one database to head; cheap when it is already there.

    One migration at a time per process: Alembic keeps its running context in module
    globals, so concurrent upgrades belong in separate processes (Celery's prefork pool).
    Concurrent migrators of one database serialise on the env's advisory lock.
    """
    started = time.monotonic()
    before = current_revision(url)
    target = head(environment)
    if before == target:
        return MigrationResult(before, before, int((time.monotonic() - started) * 1000), True)
    command.upgrade(alembic_config(environment, url, tenant_role), "head")
    after = current_revision(url)
    return MigrationResult(before, after, int((time.monotonic() - started) * 1000), False)


def _libpq(url: str) -> tuple[str, str]:
    """(libpq connection string for the server's maintenance db, database name)."""
    parsed = make_url(url)
    server = parsed.set(drivername="postgresql", database="postgres")
    return server.render_as_string(hide_password=False), parsed.database or ""


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
