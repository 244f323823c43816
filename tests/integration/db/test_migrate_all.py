"""Migrating every tenant database as a Celery group on a real tenancy worker (DESIGN §3).

The issue: "Migrating all tenant databases runs as a Celery group on tenancy with a result
per database; one failing database does not stop the others and is reported"; "a beat job
reports drift". Thirty databases on two servers: test_migrate_many.py.
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
from domain.tenancy.migrations import drifted_databases, exclusive_run, migrate_database
from domain.tenancy.models import TenantMigration
from tests.integration.db.conftest import Isolated, MakeDatabase, Tenants
from tests.support.processes import Process
from tests.support.tenants import access_token, bearer, create_account
from workers.publisher import run_group

MIGRATIONS = "/api/v1/operations/migrations"


def _upgrade_tenants(isolated: Isolated, *command: str) -> Result:
    return isolated.app.test_cli_runner().invoke(args=[*(command or ("db", "upgrade-tenants")),
                                                       "--timeout", "120"])


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
    assert "3 upgraded, 1 skipped, 1 failed: 4 of 5 databases at head" in first.output
    head = migrate.head("tenant")
    assert [migrate.current_revision(url) for url in urls] == [None, head, head, head]
    assert sorted(_recorded(isolated)) == sorted(
        [(broken, "failed"), (TRIAL, "skipped")] + [(key, "upgraded") for key in healthy])
    assert ["DuplicateTable" in (error or "") for error in _errors(isolated, broken)] == [True]

    second = _upgrade_tenants(isolated, "tenants", "migrate-all")  # the alias: the same run
    assert second.exit_code == 1, second.output
    assert all(_lines(second)[key].startswith(f"skipped {head} -> {head}") for key in healthy)
    assert "0 upgraded, 4 skipped, 1 failed: 4 of 5 databases at head" in second.output
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

    worker = start_worker("tenancy-drift", "tenancy", **isolated.worker_env())
    celery: Any = isolated.app.extensions["allotment.celery"]
    results = run_group(celery, "tasks.tenancy.check_migration_drift", [[]], timeout=120)
    assert results == [[tenants.key(behind)]]
    assert any("not at head" in line and tenants.key(behind) in line and tenants.key(current) not in line
               for line in worker.log().splitlines())

    missing = database_on(isolated.settings.placement_servers[0], "allot_db_never_created")
    tenants.dedicated(missing)  # an unreachable database is drift too, not a crash
    assert set(drifted_databases(isolated.provider)) == {tenants.key(behind), tenants.key(missing)}



def test_a_second_run_is_refused_while_one_runs(isolated: Isolated) -> None:
    with exclusive_run(isolated.provider):  # as a run in another process holds it
        refused = _upgrade_tenants(isolated, "tenants", "migrate-all")
    assert refused.exit_code == 1
    assert "another migrate-all run is in progress" in refused.output
    assert _recorded(isolated) == []  # nothing was sent


def test_operators_see_the_latest_outcome_per_database_and_the_drifted(
        isolated: Isolated, make_database: MakeDatabase) -> None:
    tenants = Tenants(isolated.provider)
    behind, current, broken = make_database(), make_database("tenant"), make_database()
    for url in (behind, current, broken):
        tenants.dedicated(url)
    _break(broken)
    for url in (current, current, broken):  # outcomes recorded as a worker records them
        migrate_database(isolated.provider, tenants.key(url))
    client = isolated.app.test_client()
    operator = access_token(client, create_account(isolated.provider, operator=True))
    member = access_token(client, create_account(isolated.provider))

    answer = client.get(MIGRATIONS, headers=bearer(operator))
    assert answer.status_code == 200, answer.json
    body = answer.json
    assert body["head"] == migrate.head("tenant")
    latest = {row["database"]: row for row in body["latest"]}
    assert set(latest) == {tenants.key(current), tenants.key(broken)}
    assert latest[tenants.key(current)]["status"] == "skipped"
    assert latest[tenants.key(broken)]["status"] == "failed"
    assert "DuplicateTable" in latest[tenants.key(broken)]["error"]
    assert sorted(body["drifted"]) == sorted([tenants.key(behind), tenants.key(broken)])

    assert client.get(MIGRATIONS, headers=bearer(member)).status_code == 403
    assert client.get(MIGRATIONS).status_code == 401
