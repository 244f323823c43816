"""Migrate-all over 30 dedicated tenant databases on two PostgreSQL servers (issue 4, item 9).

The issue: "Migrate-all with 30 dedicated tenant databases and one made to fail: 30
upgraded, 1 reported, none blocked" - with bounded parallelism (at most
MIGRATION_CONCURRENCY databases migrating at once, however many workers there are), and a
second run that skips every database already at head.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import Result
from sqlalchemy import select

from config.settings import database_name, database_on, load_settings
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import TRIAL, dedicated_key, server_label
from domain.tenancy.migrations import drifted_databases
from domain.tenancy.models import Tenant, TenantMigration
from tests.integration.db.conftest import Isolated
from tests.support import refs
from tests.support.apps import web_app
from tests.support.processes import Process
from tests.support.services import REDIS_DB_DB_ISOLATION, SecondServer, Services, create_stack, drop_stack

DEDICATED = 30
# Below the pool's six children (two workers of three): the bound, not the pool, must hold.
CONCURRENCY = 3


@dataclass
class TwoServers:
    """An isolated stack placing tenants on two servers, and the databases made on them."""

    isolated: Isolated
    servers: tuple[str, str]
    urls: list[str]

    def worker_env(self) -> dict[str, str]:
        """A worker pointed at this stack, with both placement servers configured."""
        return {**self.isolated.worker_env(), "PLACEMENT_SERVERS": ",".join(self.servers)}

    def make(self, server: str, revision: str | None) -> tuple[str, str]:
        """A database on ``server`` (migrated to ``revision`` unless None) with a tenant placed
        on it: its URL and the provider's key for it."""
        url = database_on(server, f"allot_many_{uuid.uuid4().hex[:10]}")
        self.urls.append(url)
        migrate.ensure_database(url)
        if revision is not None:
            migrate.upgrade("tenant", url, self.isolated.settings.tenant_db_role, revision)
        with self.isolated.provider.management() as session:
            session.add(Tenant(id=uuid.uuid4(), slug=refs.slug("many"), name="Migrate-all test",
                               status="dedicated", plan="dedicated", placement_server=server_label(server),
                               database_name=database_name(url)))
            session.commit()
        return url, dedicated_key(server_label(server), database_name(url))


@pytest.fixture
def two_servers(services: Services, second_server: SecondServer, tmp_path: Path) -> Iterator[TwoServers]:
    """A fresh stack whose PLACEMENT_SERVERS are the suite's server and the second one."""
    servers = (services.server_url, second_server.url)
    stack = create_stack(services, redis_db=REDIS_DB_DB_ISOLATION)
    settings = load_settings(stack.env(VAR_DIR=str(tmp_path / "var"), PLACEMENT_SERVERS=",".join(servers),
                                       MIGRATION_CONCURRENCY=str(CONCURRENCY)))
    provider = build_provider(settings)
    urls: list[str] = []
    try:
        with web_app(settings) as app:
            yield TwoServers(Isolated(stack, settings, provider, app), servers, urls)
    finally:
        provider.dispose()
        for url in urls:
            migrate.drop_database(url)
        drop_stack(stack)


def _migrate_all(two: TwoServers, *command: str) -> Result:
    return two.isolated.app.test_cli_runner().invoke(args=[*command, "--timeout", "300"])


def _lines(result: Result) -> dict[str, str]:
    """The CLI's line per database, keyed by database key."""
    return dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)


def _rows(two: TwoServers, since: datetime | None = None) -> list[TenantMigration]:
    with two.isolated.provider.management() as session:
        query = select(TenantMigration).order_by(TenantMigration.created_at)
        if since is not None:
            query = query.where(TenantMigration.created_at > since)
        return list(session.scalars(query))


def _most_at_once(rows: list[TenantMigration]) -> int:
    """The most databases being migrated at one moment, from the recorded intervals.

    Each row is one database's migration: it finished at ``created_at`` after ``duration_ms``.
    """
    events = []
    for row in rows:
        events += [(row.created_at - timedelta(milliseconds=row.duration_ms), 1), (row.created_at, -1)]
    most = current = 0
    for _, change in sorted(events):  # at the same instant a finish (-1) sorts before a start
        current += change
        most = max(most, current)
    return most


def _clash(url: str) -> None:
    """Give the database a table that clashes with the tenant schema's first revision."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        conn.execute("CREATE TABLE notices (id integer)")


def test_thirty_databases_on_two_servers_upgrade_with_one_failing(
        two_servers: TwoServers, start_worker: Callable[..., Process]) -> None:
    head, previous = migrate.head("tenant"), migrate.revision_before_head("tenant")
    assert previous is not None and previous != head
    made = [two_servers.make(two_servers.servers[i % 2], previous) for i in range(DEDICATED)]
    behind, keys = [url for url, _ in made], [key for _, key in made]
    broken, broken_key = two_servers.make(two_servers.servers[1], None)
    _clash(broken)
    assert len({key.rpartition("@")[2] for key in keys}) == 2  # both servers hold tenants
    for name in ("tenancy-many-a", "tenancy-many-b"):
        start_worker(name, "tenancy", concurrency=CONCURRENCY, **two_servers.worker_env())

    first = _migrate_all(two_servers, "tenants", "migrate-all")
    assert first.exit_code == 1, first.output
    lines = _lines(first)
    assert all(lines[key].startswith(f"upgraded {previous} -> {head} ") for key in keys), first.output
    assert lines[broken_key].startswith("failed None -> None") and "DuplicateTable" in lines[broken_key]
    assert lines[TRIAL].startswith(f"skipped {head} -> {head}")
    assert (f"{DEDICATED} upgraded, 1 skipped, 1 failed: "
            f"{DEDICATED + 1} of {DEDICATED + 2} databases at head") in first.output
    assert [migrate.current_revision(url) for url in behind] == [head] * DEDICATED
    assert migrate.current_revision(broken) is None

    recorded = _rows(two_servers)
    assert sorted((r.database, r.status) for r in recorded) == sorted(
        [(key, "upgraded") for key in keys] + [(broken_key, "failed"), (TRIAL, "skipped")])
    assert all((r.revision_before, r.revision_after) == (previous, head)
               for r in recorded if r.status == "upgraded")
    (failure,) = [r for r in recorded if r.database == broken_key]
    assert failure.error is not None and "DuplicateTable" in failure.error
    # Bounded: never more than MIGRATION_CONCURRENCY at once though six pool children were
    # idle; and parallel: three tasks are released together onto idle children.
    assert 2 <= _most_at_once(recorded) <= CONCURRENCY

    second = _migrate_all(two_servers, "db", "upgrade-tenants")
    assert second.exit_code == 1, second.output
    lines = _lines(second)
    assert all(lines[key].startswith(f"skipped {head} -> {head} ") for key in keys), second.output
    assert lines[broken_key].startswith("failed None -> None")
    assert f"0 upgraded, {DEDICATED + 1} skipped, 1 failed" in second.output
    again = _rows(two_servers, since=recorded[-1].created_at)
    assert sorted((r.database, r.status) for r in again) == sorted(
        [(key, "skipped") for key in keys] + [(broken_key, "failed"), (TRIAL, "skipped")])
    assert _most_at_once(again) <= CONCURRENCY
    assert drifted_databases(two_servers.isolated.provider) == [broken_key]
