"""Both Alembic environments go up, down to base and up again, and match the models (DESIGN §3)."""
from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from domain.db import migrate
from migrations import metadata as targets
from tests.integration.db.conftest import MakeDatabase
from tests.support.services import ROOT
from tests.support.waiting import wait_for

ROLE = "allotment_tenant"
TARGETS = {"management": targets.MANAGEMENT, "tenant": targets.TENANT}


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _schema_differences(url: str, environment: migrate.Environment) -> list[Any]:
    """What autogenerate would put in a new revision (empty when models and schema agree)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, TARGETS[environment]))
    finally:
        engine.dispose()


@pytest.mark.parametrize("environment", ["management", "tenant"])
def test_up_down_up_and_schema_matches_models(environment: migrate.Environment,
                                              make_database: MakeDatabase) -> None:
    url = make_database()
    config = migrate.alembic_config(environment, url, ROLE)
    model_tables = {t for meta in TARGETS[environment] for t in meta.tables}

    result = migrate.upgrade(environment, url, ROLE)
    assert (result.before, result.after) == (None, migrate.head(environment))
    assert _tables(url) == model_tables | {"alembic_version"}

    command.downgrade(config, "base")
    assert migrate.current_revision(url) is None
    assert _tables(url) == {"alembic_version"}

    command.upgrade(config, "head")
    assert migrate.current_revision(url) == migrate.head(environment)
    assert _schema_differences(url, environment) == []


def test_second_upgrade_is_skipped(make_database: MakeDatabase) -> None:
    url = make_database("tenant")
    result = migrate.upgrade("tenant", url, ROLE)
    assert result.skipped and result.before == result.after == migrate.head("tenant")


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _waiting_for_advisory_lock(url: str) -> int:
    with psycopg.connect(_dsn(url)) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                           "AND database = (SELECT oid FROM pg_database WHERE datname = "
                           "current_database()) AND NOT granted").fetchone()
    return int(row[0]) if row else 0


def _migrator(url: str) -> subprocess.Popen[bytes]:
    """Another process upgrading ``url`` (Alembic keeps global state: one migrator per process)."""
    code = f"from domain.db import migrate; migrate.upgrade('tenant', {url!r}, {ROLE!r})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_concurrent_upgrades_of_one_database_wait_for_each_other(make_database: MakeDatabase) -> None:
    url = make_database()
    with psycopg.connect(_dsn(url)) as holder:  # holds the migration lock, as a running migrator would
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (targets.LOCK_KEY,))
        migrators = [_migrator(url) for _ in range(2)]
        wait_for(lambda: _waiting_for_advisory_lock(url) == 2, timeout=60,
                 message="both migrators to wait for the lock")
        holder.rollback()
    for migrator in migrators:
        output, _ = migrator.communicate(timeout=120)
        assert migrator.returncode == 0, output.decode(errors="replace")
    assert migrate.current_revision(url) == migrate.head("tenant")


def test_the_foreign_key_of_switched_sessions_is_added_without_reading_every_session(
        make_database: MakeDatabase) -> None:
    # auth_sessions is never pruned: validating the new foreign key (management 0013) read every
    # row while the migration held the table ACCESS EXCLUSIVE. Every existing parent_id is NULL,
    # so it is added NOT VALID: rows written from then on are checked, none is read.
    url = make_database("management")
    with psycopg.connect(_dsn(url)) as conn:
        row = conn.execute("SELECT convalidated FROM pg_constraint "
                           "WHERE conname = 'fk_auth_sessions_parent_id_auth_sessions'").fetchone()
    assert row == (False,)
