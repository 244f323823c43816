"""Migrating every tenant database as a Celery group on a real tenancy worker (DESIGN §3).

The issue: "Migrating all tenant databases runs as a Celery group on tenancy with a result
per database; one failing database does not stop the others and is reported".
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from click.testing import Result
from sqlalchemy import select

from config.settings import database_on
from domain.db import migrate
from domain.db.provider import TRIAL
from domain.tenancy.migrations import drifted_databases
from domain.tenancy.models import TenantMigration
from tests.integration.db.conftest import Isolated, MakeDatabase, Tenants
from tests.support.processes import Process
from workers.publisher import run_group


def _upgrade_tenants(isolated: Isolated) -> Result:
    return isolated.app.test_cli_runner().invoke(args=["db", "upgrade-tenants", "--timeout", "120"])


def _lines(result: Result) -> dict[str, str]:
    """The CLI's line per database, keyed by database key."""
    return dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)


def _recorded(isolated: Isolated) -> list[tuple[str, str]]:
    """(database, status) of every recorded outcome, oldest run first."""
    with isolated.provider.management() as session:
        rows = session.execute(select(TenantMigration.database, TenantMigration.status)
                               .order_by(TenantMigration.created_at)).all()
    return [(row.database, row.status) for row in rows]


def _errors(isolated: Isolated, database: str) -> list[str | None]:
    with isolated.provider.management() as session:
        return list(session.scalars(select(TenantMigration.error)
                                    .where(TenantMigration.database == database)))


def _break(url: str) -> None:
    """Give the database a table that clashes with the tenant schema's first revision."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute("CREATE TABLE notices (id integer)")


def test_one_failing_database_does_not_stop_the_others(
        isolated: Isolated, make_database: MakeDatabase,
        start_worker: Callable[..., Process]) -> None:
    tenants = Tenants(isolated.provider)
    urls = [make_database() for _ in range(4)]  # created, not migrated
    keys = [tenants.key(url) for url in urls]
    for url in urls:
        tenants.dedicated(url)
    _break(urls[0])
    broken, healthy = keys[0], keys[1:]
    start_worker("tenancy-migrate", "tenancy", concurrency=2, **isolated.worker_env())

    first = _upgrade_tenants(isolated)
    assert first.exit_code == 1, first.output
    lines = _lines(first)
    assert lines[broken].startswith("failed") and "DuplicateTable" in lines[broken]
    assert all(lines[key].startswith("upgraded None -> ") for key in healthy)
    assert lines[TRIAL].startswith("skipped")
    assert "4 of 5 databases at head" in first.output
    head = migrate.head("tenant")
    assert [migrate.current_revision(url) for url in urls] == [None, head, head, head]
    assert sorted(_recorded(isolated)) == sorted(
        [(broken, "failed"), (TRIAL, "skipped")] + [(key, "upgraded") for key in healthy])
    assert ["DuplicateTable" in (error or "") for error in _errors(isolated, broken)] == [True]

    second = _upgrade_tenants(isolated)
    assert second.exit_code == 1, second.output
    assert all(_lines(second)[key].startswith(f"skipped {head} -> {head}") for key in healthy)
    assert sorted(_recorded(isolated)[5:]) == sorted(
        [(broken, "failed"), (TRIAL, "skipped")] + [(key, "skipped") for key in healthy])


def test_drift_reports_exactly_the_database_not_at_head(
        isolated: Isolated, make_database: MakeDatabase,
        start_worker: Callable[..., Process]) -> None:
    tenants = Tenants(isolated.provider)
    behind, current = make_database(), make_database("tenant")
    tenants.dedicated(behind)
    tenants.dedicated(current)
    assert drifted_databases(isolated.provider) == [tenants.key(behind)]

    start_worker("tenancy-drift", "tenancy", **isolated.worker_env())
    celery: Any = isolated.app.extensions["allotment.celery"]
    results = run_group(celery, "tasks.tenancy.check_migration_drift", [[]], timeout=120)
    assert results == [[tenants.key(behind)]]

    missing = database_on(isolated.settings.placement_servers[0], "allot_db_never_created")
    tenants.dedicated(missing)  # an unreachable database is drift too, not a crash
    assert set(drifted_databases(isolated.provider)) == {tenants.key(behind), tenants.key(missing)}
