"""The promotion procedure on two real PostgreSQL servers, run in the test process.

Workers, crashes and concurrent writers are in the other modules; here: placement, the
copy in dependency order, verification, the switch, the purge, and the clean-up that leaves
a tenant on trial when verification fails.
"""
from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from alembic import command
from sqlalchemy import func, select, update

from domain.db import migrate
from domain.db.provider import TRIAL, server_label
from domain.messaging.tables import outbox
from domain.notifications.models import Notice
from domain.tenancy import promotion
from domain.tenancy.copying import connect
from domain.tenancy.models import Tenant
from tests.integration.promotion.conftest import Plane, rows_in
from tests.integration.promotion.helpers import held_before, wait_until_waiting_at
from tests.support.locks import wait_until_someone_waits_for

TABLES = ("notices", "outbox", "inbox")


def _request(plane: Plane, tenant_id: uuid.UUID) -> uuid.UUID:
    with plane.provider.management() as session:
        promotion_id = promotion.request_promotion(session, tenant_id, reason="operator")
        session.commit()
    return promotion_id


def _running(plane: Plane, promotion_id: uuid.UUID, outcome: list[promotion.RunResult]) -> threading.Thread:
    """A run of the promotion in a thread of its own (started); its result goes to ``outcome``."""
    runner = threading.Thread(target=lambda: outcome.append(promotion.run(plane.provider, promotion_id)))
    runner.start()
    return runner


def _fence(plane: Plane, tenant_id: uuid.UUID) -> str | None:
    with connect(plane.provider.url_of(TRIAL)) as conn:
        row = conn.execute("SELECT moved_to FROM tenant_fences WHERE tenant_id = %s", (tenant_id,)).fetchone()
    return row[0] if row else None


def _database_exists(server_url: str, name: str) -> bool:
    dsn = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_a_promoted_tenant_lives_only_in_its_own_database_on_the_emptier_server(plane: Plane) -> None:
    # The suite's server already holds a dedicated tenant: the second server is emptier.
    settled = plane.tenant()
    with plane.provider.management() as session:
        session.execute(update(Tenant).where(Tenant.id == settled.id).values(
            status="dedicated", placement_server=server_label(plane.servers[0]),
            database_name=f"placeholder_{settled.id.hex}"))
        session.commit()
    neighbour = plane.tenant(rows=30)
    tenant = plane.tenant(rows=500)
    reports: list[promotion.Progress] = []

    result = promotion.run(plane.provider, _request(plane, tenant.id), report=reports.append)

    assert result.progress.status == "completed", result.progress.error
    row = plane.tenant_row(tenant.id)
    assert (row.status, row.placement_server) == ("dedicated", server_label(plane.servers[1]))
    route = plane.provider.route(tenant.id)
    assert route.db_key.endswith("@" + server_label(plane.servers[1]))
    expected = {"notices": 500, "outbox": 1, "inbox": 1}
    assert {t: rows_in(route.url, t, tenant.id) for t in TABLES} == expected
    trial = plane.provider.url_of(TRIAL)
    assert {t: rows_in(trial, t, tenant.id) for t in TABLES} == dict.fromkeys(TABLES, 0)
    assert {t: rows_in(plane.provider.url_of(TRIAL), t, neighbour.id) for t in TABLES} == {
        "notices": 30, "outbox": 1, "inbox": 1}
    assert _fence(plane, tenant.id) == route.db_key
    # The tenant's sessions now read its own database, filtered as before.
    with plane.provider.tenant(tenant.id) as session:
        assert session.scalar(select(func.count()).select_from(Notice)) == 500
    # Progress was reported step by step, and the promotion is announced once.
    assert [r.step for r in reports if r.step != reports[0].step][-1] == "purged"
    assert reports[-1].percent == 100 and result.progress.rows_total == 502
    assert [e.type for e in result.emitted] == ["tenancy.TenantPromoted"]
    with plane.provider.management() as session:
        assert session.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.type == "tenancy.TenantPromoted", outbox.c.tenant_id == tenant.id)) == 1


def test_a_second_request_gets_the_running_promotion_and_a_dedicated_tenant_is_refused(plane: Plane) -> None:
    tenant = plane.tenant(rows=5)
    first = _request(plane, tenant.id)
    assert _request(plane, tenant.id) == first
    assert promotion.run(plane.provider, first).progress.status == "completed"
    with plane.provider.management() as session:
        try:
            promotion.request_promotion(session, tenant.id, reason="operator")
        except promotion.Conflict as exc:
            assert exc.field == "tenant"
        else:
            raise AssertionError("a dedicated tenant was promoted again")


def test_a_copy_that_does_not_verify_leaves_the_tenant_on_trial(plane: Plane) -> None:
    tenant = plane.tenant(rows=200)
    promotion_id = _request(plane, tenant.id)
    outcome: list[promotion.RunResult] = []
    with held_before(plane.provider, "verified") as held:
        runner = _running(plane, promotion_id, outcome)
        wait_until_waiting_at(held, "verified")
        # The copy is in the new database: damage it before it is verified.
        copied = plane.promotion(promotion_id)
        url = plane.provider.url_of(f"dedicated:{copied.database}@{copied.server}")
        with connect(url) as conn:
            conn.execute("DELETE FROM notices WHERE id = (SELECT id FROM notices LIMIT 1)")
            conn.commit()
    runner.join(60)

    assert outcome and outcome[0].progress.status == "failed"
    assert "notices" in (outcome[0].progress.error or "")
    row = plane.tenant_row(tenant.id)
    assert (row.status, row.placement_server, row.database_name) == ("trial", None, None)
    assert plane.provider.route(tenant.id).db_key == TRIAL
    assert rows_in(plane.provider.url_of(TRIAL), "notices", tenant.id) == 200
    assert _fence(plane, tenant.id) is None
    assert not _database_exists(plane.provider.server_url(copied.server or ""), copied.database or "")
    # Nothing stands in the way of promoting it again.
    again = promotion.run(plane.provider, _request(plane, tenant.id))
    assert again.progress.status == "completed"
    assert rows_in(plane.provider.route(tenant.id).url, "notices", tenant.id) == 200


def _dedicated_url(plane: Plane, promotion_id: uuid.UUID) -> str:
    row = plane.promotion(promotion_id)
    return plane.provider.url_of(f"dedicated:{row.database}@{row.server}")


def test_a_run_after_a_deploy_migrated_trial_brings_the_new_database_to_trials_revision(plane: Plane) -> None:
    tenant = plane.tenant(rows=20)
    promotion_id = _request(plane, tenant.id)
    outcome: list[promotion.RunResult] = []
    with held_before(plane.provider, "copied") as held:
        runner = _running(plane, promotion_id, outcome)
        wait_until_waiting_at(held, "copied")
        # As if this run had migrated the new database before a deploy, since when trial is
        # one revision ahead (a resumed run finds it so).
        url = _dedicated_url(plane, promotion_id)
        previous = migrate.revision_before_head("tenant")
        command.downgrade(migrate.alembic_config("tenant", url, plane.settings.tenant_db_role), previous)
        assert migrate.current_revision(url) == previous
    runner.join(60)

    assert outcome and outcome[0].progress.status == "completed", outcome[0].progress.error
    assert migrate.current_revision(url) == migrate.head("tenant")
    assert rows_in(url, "notices", tenant.id) == 20
    assert rows_in(plane.provider.url_of(TRIAL), "notices", tenant.id) == 0


def test_a_migration_of_trial_waits_until_the_tenant_has_moved(plane: Plane) -> None:
    tenant = plane.tenant(rows=20)
    promotion_id = _request(plane, tenant.id)
    outcome: list[promotion.RunResult] = []
    step_when_migrating: list[str] = []
    trial = plane.provider.url_of(TRIAL).replace("postgresql+psycopg://", "postgresql://", 1)

    def migrate_trial() -> None:  # what the migration environment does first, in its transaction
        with psycopg.connect(trial) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrate.LOCK_KEY,))
            step_when_migrating.append(plane.promotion(promotion_id).step)

    with held_before(plane.provider, "copied") as held:
        runner = _running(plane, promotion_id, outcome)
        wait_until_waiting_at(held, "copied")
        migration = threading.Thread(target=migrate_trial)
        migration.start()
        wait_until_someone_waits_for(trial, migrate.LOCK_KEY, "the migration")
    runner.join(60)
    migration.join(60)

    assert outcome and outcome[0].progress.status == "completed", outcome[0].progress.error
    # It ran once the tenant was switched: never while the copy's snapshot was read.
    assert step_when_migrating and step_when_migrating[0] in ("switched", "purged")


def test_a_trial_database_behind_the_new_one_holds_the_promotion_without_spending_a_run(
        plane: Plane) -> None:
    # A deploy shipped a revision and created the new database at it before migrate-all
    # reached trial: the copy waits for trial, and the wait is not one of the runs it may fail.
    tenant = plane.tenant(rows=5)
    promotion_id = _request(plane, tenant.id)
    trial = migrate.alembic_config("tenant", plane.provider.url_of(TRIAL), plane.settings.tenant_db_role)
    command.downgrade(trial, migrate.revision_before_head("tenant"))
    try:
        for _ in range(promotion.MAX_ATTEMPTS + 1):
            with pytest.raises(promotion.WaitingForMigrations):
                promotion.run(plane.provider, promotion_id)
        waiting = plane.promotion(promotion_id)
        assert (waiting.status, waiting.attempts) == ("running", 0)
        assert "migrate every tenant database" in (waiting.error or "")
        assert plane.tenant_row(tenant.id).status == "promoting"
    finally:
        command.upgrade(trial, "head")
    assert promotion.run(plane.provider, promotion_id).progress.status == "completed"
    assert rows_in(_dedicated_url(plane, promotion_id), "notices", tenant.id) == 5
