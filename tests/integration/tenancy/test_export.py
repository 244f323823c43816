"""Tenant export and offboarding on real tenancy workers, against local storage and S3 (moto).

A stack of its own (management and trial databases on the suite's server, a Redis server of
its own) so that no other module's worker takes these jobs with another storage. Every
test runs once per storage: the worker and the web app are configured alike, the archive
is fetched through the signed link the status URL gives (the web app's download route for
local storage, ``urllib`` against moto for S3) and opened with ``tarfile``.
"""
from __future__ import annotations

import hashlib
import io
import json
import secrets
import tarfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from flask import Flask
from psycopg.types.json import Jsonb
from sqlalchemy import delete, func, select, text, update

from config.settings import Settings, database_name, database_on, load_settings
from domain.assets.storage import LocalStorage, build_storage
from domain.bootstrap import build_provider
from domain.db import migrate
from domain.db.provider import TRIAL, DataProvider, TenantMoved, server_label
from domain.errors import Conflict, NotFound
from domain.messaging.contracts.purchases import PurchaseCompletedV1
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from domain.messaging.tables import outbox
from domain.notifications.models import Notice
from domain.tenancy import export, promotion
from domain.tenancy import handlers as tenancy_handlers
from domain.tenancy.copying import connect
from domain.tenancy.models import Promotion, Tenant, TenantExport
from tests.integration.web.helpers import assert_refused
from tests.support import processes, tenants, things
from tests.support.apps import web_app
from tests.support.locks import wait_until_someone_waits_for
from tests.support.s3 import MotoS3, start_moto_s3
from tests.support.services import Services, Stack, create_stack, drop_stack
from tests.support.tenants import TenantWithMembers
from tests.support.waiting import wait_for
from workers import embedded

TENANT_TABLES = ("inbox", "notices", "outbox")  # with a tenant_id column, in the tenant schema
PRIMARY_KEY = {"inbox": "message_id", "notices": "id", "outbox": "id"}
EXPORT_TIMEOUT = 90.0


# --- the stack ----------------------------------------------------------------------------

@dataclass
class Plane:
    """This module's stack, storage, worker, web app and an operator's token."""

    stack: Stack
    settings: Settings
    provider: DataProvider
    app: Flask
    env: dict[str, str]
    storage: str
    services: Services
    operator: dict[str, str] = field(default_factory=dict)
    worker: processes.Process | None = None
    databases: list[str] = field(default_factory=list)

    def dedicated_database(self) -> str:
        """A new tenant database on the suite's server, at the schema's head."""
        url = database_on(self.services.server_url, f"allot_export_{secrets.token_hex(5)}")
        self.databases.append(url)
        migrate.ensure_database(url)
        migrate.upgrade("tenant", url, self.settings.tenant_db_role)
        return url

    def job(self, export_id: uuid.UUID) -> TenantExport:
        """The export's row as it stands."""
        with self.provider.management() as session:
            job = session.get(TenantExport, export_id)
            assert job is not None
            return job


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedRedis]:
    """A Redis server of this module's own: its broker sees no other module's workers."""
    server = embedded.start_redis(tmp_path_factory.mktemp("export-redis"), embedded.free_port())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    """A moto S3 server for this module."""
    with start_moto_s3() as server:
        yield server


@pytest.fixture(scope="module")
def export_stack(services: Services, redis_server: embedded.EmbeddedRedis) -> Iterator[Stack]:
    """Management and trial databases of this module, on its own Redis."""
    stack = create_stack(Services(services.server_url, f"redis://127.0.0.1:{redis_server.port}"), redis_db=0)
    yield stack
    drop_stack(stack)


@pytest.fixture(scope="module", params=["local", "s3"])
def plane(request: pytest.FixtureRequest, services: Services, export_stack: Stack,
          tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator[Plane]:
    """The stack with one storage (local, then S3), a tenancy worker and the web app."""
    storage_env: dict[str, str] = {}
    if request.param == "s3":
        storage_env = request.getfixturevalue("moto").env()
    env = export_stack.env(VAR_DIR=str(tmp_path_factory.mktemp(f"export-var-{request.param}")),
                           # Routes stay cached long: only the offboarding's announcement drops them.
                           ROUTING_CACHE_TTL="30", PROMOTION_PURGE_GRACE_SECONDS="30", **storage_env)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in storage_env.items():
            patch.setenv(name, value)  # boto3 reads its credentials from the environment
        settings = load_settings(env)
        provider = build_provider(settings)
        with web_app(settings) as app:
            plane = Plane(export_stack, settings, provider, app, env, request.param, services)
            plane.operator = tenants.bearer(tenants.sign_in(
                app.test_client(), tenants.create_account(provider, operator=True)).access_token)
            plane.worker = processes.celery_worker(f"export-tenancy-{request.param}", "tenancy", env, log_dir)
            try:
                yield plane
            finally:
                plane.worker.stop()
                for url in plane.databases:
                    migrate.drop_database(url)
                provider.dispose()


# --- tenants and their rows ------------------------------------------------------------------

@dataclass(frozen=True)
class Seeded:
    """A tenant with rows in its tenant database."""

    tenant: TenantWithMembers
    url: str  # its tenant database

    @property
    def id(self) -> uuid.UUID:
        """The tenant's id."""
        return self.tenant.id


def seed_rows(url: str, tenant_id: uuid.UUID, notices: int) -> None:
    """``notices`` notices (COPY), three outbox rows and two inbox rows of the tenant."""
    with connect(url) as conn:
        with conn.cursor().copy("COPY notices (id, tenant_id, user_id, event_id, category, title, body) "
                                "FROM STDIN") as copy:
            for i in range(notices):
                copy.write_row((uuid.uuid4(), tenant_id, uuid.uuid4(), uuid.uuid4(), "seed",
                                f"notice {i} \u00e9\u4e2d \"quoted\"", "line\nbreak" * (i % 3)))
        for _ in range(3):
            conn.execute("INSERT INTO outbox (id, event_id, type, version, handler, payload, tenant_id, "
                         "next_attempt_at) VALUES (%s, %s, 'test.Seeded', 1, 'notifications.none', %s, %s, "
                         "now())", (uuid.uuid4(), uuid.uuid4(), Jsonb({"nested": {"n": [1, 2]}}), tenant_id))
        for _ in range(2):
            conn.execute("INSERT INTO inbox (message_id, handler, tenant_id) VALUES (%s, 'test.seed', %s)",
                         (uuid.uuid4(), tenant_id))
        conn.commit()


def trial_tenant(plane: Plane, notices: int = 25) -> Seeded:
    """A trial tenant (an owner and an employee) with rows in the trial database."""
    tenant = tenants.create_tenant(plane.provider, ("owner", "employee"), prefix="exp")
    url = plane.provider.url_of(TRIAL)
    seed_rows(url, tenant.id, notices)
    return Seeded(tenant, url)


def dedicated_tenant(plane: Plane, notices: int = 25) -> Seeded:
    """A tenant with a database of its own, with rows in it (and one of a stray tenant)."""
    tenant = tenants.create_tenant(plane.provider, ("owner",), prefix="exd")
    url = plane.dedicated_database()
    with plane.provider.management() as session:
        session.execute(update(Tenant).where(Tenant.id == tenant.id).values(
            status="dedicated", placement_server=server_label(plane.settings.placement_servers[0]),
            database_name=database_name(url)))
        session.commit()
    seed_rows(url, tenant.id, notices)
    seed_rows(url, uuid.uuid4(), 2)  # not the tenant's: must stay out of its archive
    return Seeded(tenant, url)


def rows_of(url: str, tenant_id: uuid.UUID | None = None) -> dict[str, list[str]]:
    """Primary keys of every row per tenant table (of one tenant, or of all), sorted."""
    with connect(url) as conn:
        out = {}
        for table in TENANT_TABLES:
            where, params = ("WHERE tenant_id = %s", (tenant_id,)) if tenant_id else ("", ())
            rows = conn.execute(f"SELECT {PRIMARY_KEY[table]}::text FROM {table} {where}", params)
            out[table] = sorted(r[0] for r in rows)
        return out


# --- driving an export through the API -------------------------------------------------------

def start(plane: Plane, seeded: Seeded, kind: str = "export") -> uuid.UUID:
    """POST the export (or offboarding) as the operator; return its id from the 202."""
    client = plane.app.test_client()
    if kind == "export":
        response = client.post(f"/api/v1/operations/tenants/{seeded.id}/exports", headers=plane.operator)
    else:
        response = client.post(f"/api/v1/operations/tenants/{seeded.id}/offboard", headers=plane.operator,
                               json={"confirm_slug": seeded.tenant.slug})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.headers["Location"] == response.json["status_url"]
    return uuid.UUID(response.json["id"])


def finished(plane: Plane, export_id: uuid.UUID) -> dict[str, Any]:
    """Follow the status URL until the job ends; it must have completed."""
    client = plane.app.test_client()
    url = f"/api/v1/operations/exports/{export_id}"

    def done() -> dict[str, Any] | None:
        body = client.get(url, headers=plane.operator).json
        return body if body["status"] in ("completed", "failed") else None

    body = wait_for(done, timeout=EXPORT_TIMEOUT, message=f"export {export_id} to finish")
    assert body["status"] == "completed", body
    assert body["step"] == "completed" and body["percent"] == 100 and body["error"] is None
    return body


def download(plane: Plane, url: str) -> bytes:
    """Follow a signed link as a plain client would: the web app's route, or S3 over HTTP."""
    if plane.storage == "local":
        response = plane.app.test_client().get(urlsplit(url).path)
        try:
            assert response.status_code == 200, response.get_data(as_text=True)[:300]
            return response.get_data()
        finally:
            response.close()
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - our own moto server
        return response.read()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Opened:
    """An archive's manifest and its files, parsed."""

    manifest: dict[str, Any]
    raw: dict[str, bytes]

    def lines(self, name: str) -> list[dict[str, Any]]:
        """The JSON Lines of one file."""
        return [json.loads(line) for line in self.raw[name].decode().splitlines()]


def open_archive(data: bytes) -> Opened:
    """Every member of a .tar.gz, the manifest first."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        assert members[0].name == "manifest.json"
        raw = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    return Opened(json.loads(raw.pop("manifest.json")), raw)


def check_archive(plane: Plane, body: dict[str, Any], seeded: Seeded,
                  expected: dict[str, list[str]]) -> Opened:
    """The archive behind the status: its checksum and size, a manifest that matches every
    file, each of the tenant's rows exactly once and nothing of anyone else."""
    assert body["download_url"], body
    data = download(plane, body["download_url"])
    assert (len(data), hashlib.sha256(data).hexdigest()) == (body["size_bytes"], body["sha256"])
    archive = open_archive(data)
    manifest = archive.manifest
    tenant = seeded.tenant
    assert manifest["tenant"] == {"id": str(tenant.id), "slug": tenant.slug, "name": tenant.name}
    assert manifest["schema_revision"]["tenant"] == migrate.head("tenant")
    assert manifest["schema_revision"]["management"] == migrate.head("management")
    datetime.fromisoformat(manifest["created_at"])
    listed = {entry["file"]: entry for entry in manifest["tables"]}
    assert set(listed) == set(archive.raw)
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(archive.raw[name]).hexdigest(), name
        assert entry["rows"] == len(archive.lines(name)), name
    assert manifest["rows"] == body["rows"] == sum(e["rows"] for e in listed.values())
    for table in TENANT_TABLES:
        lines = archive.lines(f"tenant/{table}.jsonl")
        assert {line["tenant_id"] for line in lines} <= {str(seeded.id)}, f"another tenant's row in {table}"
        assert sorted(line[PRIMARY_KEY[table]] for line in lines) == expected[table], table
    check_management_rows(archive, seeded)
    return archive


def check_management_rows(archive: Opened, seeded: Seeded) -> None:
    """The tenant's row, roles, memberships and members' profiles, without password hashes."""
    (tenant,) = archive.lines("management/tenants.jsonl")
    assert (tenant["id"], tenant["slug"]) == (str(seeded.id), seeded.tenant.slug)
    users = archive.lines("management/users.jsonl")
    assert sorted(u["email"] for u in users) == sorted(a.email for a in seeded.tenant.members.values())
    assert all(set(u) == {"id", "email", "name"} for u in users)
    assert b"argon2" not in b"".join(archive.raw.values())
    members = {m["user_id"]: m["roles"] for m in archive.lines("management/memberships.jsonl")}
    assert members == {str(a.user_id): [role] for role, a in seeded.tenant.members.items()}
    roles = {r["name"] for r in archive.lines("management/roles.jsonl")}
    assert {"owner", "admin", "hr_manager", "employee"} <= roles


# --- export ----------------------------------------------------------------------------------

def test_a_trial_tenants_export_holds_each_of_its_rows_once(plane: Plane) -> None:
    seeded, neighbour = trial_tenant(plane), trial_tenant(plane)
    expected = rows_of(seeded.url, seeded.id)
    assert all(expected.values())
    body = finished(plane, start(plane, seeded))
    archive = check_archive(plane, body, seeded, expected)
    everything = b"".join(archive.raw.values())
    assert neighbour.tenant.slug.encode() not in everything
    assert str(neighbour.id).encode() not in everything
    notice = archive.lines("tenant/notices.jsonl")[0]
    assert "\u00e9\u4e2d \"quoted\"" in notice["title"] and notice["created_at"].endswith("+00:00")
    assert archive.lines("tenant/outbox.jsonl")[0]["payload"] == {"nested": {"n": [1, 2]}}
    job = plane.job(uuid.UUID(body["id"]))
    assert job.storage_key == f"tenants/{seeded.id}/exports/{job.id}.tar.gz"
    assert rows_of(seeded.url, seeded.id) == expected  # an export changes nothing


def test_a_dedicated_tenants_export_reads_its_own_database(plane: Plane) -> None:
    seeded = dedicated_tenant(plane)
    trial_rows = trial_tenant(plane)  # noise in the trial database
    expected = rows_of(seeded.url, seeded.id)
    body = finished(plane, start(plane, seeded))
    archive = check_archive(plane, body, seeded, expected)
    assert archive.manifest["database"] == "dedicated"
    assert str(trial_rows.id).encode() not in b"".join(archive.raw.values())


def test_the_cli_exports_and_prints_the_link(plane: Plane) -> None:
    seeded = trial_tenant(plane, notices=3)
    result = plane.app.test_cli_runner().invoke(args=["tenants", "export", seeded.tenant.slug])
    assert result.exit_code == 0, result.output
    assert f"{seeded.tenant.slug}: export completed at completed" in result.output
    link = next(line.split(" ", 1)[1] for line in result.output.splitlines() if line.startswith("download: "))
    archive = open_archive(download(plane, link))
    assert archive.manifest["tenant"]["slug"] == seeded.tenant.slug


# --- offboarding -----------------------------------------------------------------------------

def test_offboarding_a_trial_tenant_purges_its_rows_only(plane: Plane) -> None:
    seeded, neighbour = trial_tenant(plane), trial_tenant(plane)
    plane.provider.route(seeded.id)  # cached: the offboarding must make every process drop it
    expected, others = rows_of(seeded.url, seeded.id), rows_of(seeded.url, neighbour.id)
    body = finished(plane, start(plane, seeded, "offboard"))
    assert body["kind"] == "offboard"
    check_archive(plane, body, seeded, expected)  # exported before anything was deleted
    assert rows_of(seeded.url, seeded.id) == {table: [] for table in TENANT_TABLES}
    assert rows_of(seeded.url, neighbour.id) == others
    assert tenant_status(plane, seeded.id) == "deleted"
    assert tenant_status(plane, neighbour.id) == "trial"
    wait_for(lambda: not routed(plane.provider, seeded.id), timeout=10, message="the route to be dropped")
    plane.provider.route(neighbour.id)
    # A writer that still holds the old route is refused by the fence, not let in.
    with connect(seeded.url) as conn:
        assert conn.execute("SELECT moved_to FROM tenant_fences WHERE tenant_id = %s",
                            (seeded.id,)).fetchone() == (export.OFFBOARDED,)


def test_offboarding_a_dedicated_tenant_drops_its_database(plane: Plane) -> None:
    seeded = dedicated_tenant(plane)
    expected = rows_of(seeded.url, seeded.id)
    body = finished(plane, start(plane, seeded, "offboard"))
    check_archive(plane, body, seeded, expected)
    assert not database_exists(plane, seeded.url)
    assert tenant_status(plane, seeded.id) == "deleted"
    wait_for(lambda: not routed(plane.provider, seeded.id), timeout=10, message="the route to be dropped")
    assert database_name(seeded.url) not in str(plane.provider.tenant_databases())


@pytest.mark.parametrize("placement", ["trial", "dedicated"])
def test_an_offboarding_holds_the_tenants_writes_and_refuses_them_once_archived(
        plane: Plane, placement: str) -> None:
    seeded = trial_tenant(plane) if placement == "trial" else dedicated_tenant(plane)
    # With no offboarding under way a write passes the gate at once (and is archived).
    assert isinstance(write_notice(plane, seeded.id), uuid.UUID)
    expected = rows_of(seeded.url, seeded.id)
    management = plane.provider.url_of("management")
    outcome: list[uuid.UUID | BaseException] = []
    backend: list[int] = []
    writer = threading.Thread(target=lambda: outcome.append(write_notice(plane, seeded.id, backend)),
                              daemon=True)
    with connect(management, autocommit=True) as pause:
        # Paused with the write lock held and the archive built, not yet uploaded; and again
        # before the purge, so the refused writer is not cut off by the database's drop.
        for stage in ("upload", "purged"):
            checkpoint(pause, "lock", stage)
        export_id = start(plane, seeded, "offboard")
        wait_for(lambda: waiting_at_checkpoint(management) and plane.job(export_id).step == "requested",
                 timeout=60, message="the offboarding to reach the upload")
        writer.start()
        wait_for(lambda: backend and waiting_for_lock(seeded.url, backend[0]), timeout=30,
                 message="the writer to wait on the tenant's write lock")
        assert outcome == [] and writer.is_alive()
        assert rows_of(seeded.url, seeded.id) == expected  # nothing written meanwhile
        checkpoint(pause, "unlock", "upload")
        writer.join(timeout=60)
        assert not writer.is_alive(), "the writer still waits after the lock was let go"
        assert len(outcome) == 1 and isinstance(outcome[0], TenantMoved), outcome
        wait_for(lambda: waiting_at_checkpoint(management) and plane.job(export_id).step == "archived",
                 timeout=60, message="the offboarding to reach the purge")
        assert rows_of(seeded.url, seeded.id) == expected  # refused: nothing written after it
    body = finished(plane, export_id)
    check_archive(plane, body, seeded, expected)  # every acknowledged write, and nothing else
    if placement == "trial":
        assert rows_of(seeded.url, seeded.id) == {table: [] for table in TENANT_TABLES}
    else:
        assert not database_exists(plane, seeded.url)
    # Once its route is gone, a write is refused before it reaches any database.
    wait_for(lambda: not routed(plane.provider, seeded.id), timeout=10, message="the route to be dropped")
    with pytest.raises(NotFound):
        write_notice(plane, seeded.id, reraise=True)


def test_a_migration_of_the_tenants_database_waits_until_its_archive_is_read(plane: Plane) -> None:
    seeded = trial_tenant(plane)
    management = plane.provider.url_of("management")
    migrated: list[bool] = []
    dsn = seeded.url.replace("postgresql+psycopg://", "postgresql://", 1)

    def migrate_it() -> None:  # what the migration environment does first, in its transaction
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (migrate.LOCK_KEY,))
            migrated.append(True)

    with connect(management, autocommit=True) as pause:
        checkpoint(pause, "lock", "upload")  # the archive read, not yet uploaded
        export_id = start(plane, seeded)
        wait_for(lambda: waiting_at_checkpoint(management) and plane.job(export_id).step == "requested",
                 timeout=60, message="the export to reach the upload")
        migration = threading.Thread(target=migrate_it, daemon=True)
        migration.start()
        wait_until_someone_waits_for(seeded.url, migrate.LOCK_KEY, "the migration")
        assert migrated == []  # the archive's snapshot is held: the migration waits, holding no table
        checkpoint(pause, "unlock", "upload")
    finished(plane, export_id)
    migration.join(timeout=60)
    assert migrated == [True]  # and runs once the archive was read


def checkpoint(conn: psycopg.Connection, action: str, stage: str) -> None:
    """Hold (``lock``) or let go (``unlock``) the checkpoint of ``stage``: every run pauses there."""
    query = ("SELECT pg_advisory_lock(hashtextextended(%s, 0))" if action == "lock"
             else "SELECT pg_advisory_unlock(hashtextextended(%s, 0))")
    conn.execute(query, (export.checkpoint_name(stage),))


def write_notice(plane: Plane, tenant_id: uuid.UUID, backend: list[int] | None = None, *,
                 reraise: bool = False) -> uuid.UUID | BaseException:
    """Write one notice through the data provider and commit: its id once committed, or the
    error that refused it (``backend`` gets the session's server pid before it writes)."""
    notice_id = uuid.uuid4()
    try:
        with plane.provider.tenant(tenant_id) as session:
            if backend is not None:
                backend.append(int(session.scalar(text("SELECT pg_backend_pid()")) or 0))
            session.add(Notice(id=notice_id, user_id=uuid.uuid4(), event_id=uuid.uuid4(),
                               category="late", title="written while offboarding"))
            session.commit()
    except Exception as exc:
        if reraise:
            raise
        return exc
    return notice_id


def waiting_for_lock(url: str, pid: int) -> bool:
    """True while backend ``pid`` waits for an advisory lock it has not been granted."""
    with connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.pid = %s AND l.locktype = 'advisory' AND NOT l.granted "
            "AND a.wait_event_type = 'Lock'", (pid,)).fetchone() == (1,)


def test_an_offboarding_and_a_promotion_of_one_tenant_are_never_both_under_way(plane: Plane) -> None:
    # An offboarding's purge reads where the tenant lives: a promotion finishing meanwhile
    # would have its new database dropped. Each refuses while the other is pending.
    offboarded, promoted = trial_tenant(plane, notices=1), trial_tenant(plane, notices=1)
    with plane.provider.management() as session:
        export.request_offboard(session, offboarded.id, confirm_slug=offboarded.tenant.slug)
        promotion.request_promotion(session, promoted.id, reason="operator")
        session.commit()
    try:
        with plane.provider.management() as session, pytest.raises(Conflict) as refused:
            promotion.request_promotion(session, offboarded.id, reason="operator")
        assert refused.value.field == "tenant"
        with plane.provider.management() as session, pytest.raises(Conflict) as refused:
            export.request_offboard(session, promoted.id, confirm_slug=promoted.tenant.slug)
        assert refused.value.field == "tenant_id"
        with plane.provider.management() as session:
            assert session.scalar(select(func.count()).select_from(Promotion)
                                  .where(Promotion.tenant_id == offboarded.id)) == 0
            assert session.scalar(select(func.count()).select_from(TenantExport)
                                  .where(TenantExport.tenant_id == promoted.id)) == 0
    finally:  # neither job was sent; no later test's workers or beat may find them pending
        with plane.provider.management() as session:
            session.execute(delete(outbox).where(outbox.c.tenant_id == promoted.id))
            session.execute(delete(Promotion).where(Promotion.tenant_id == promoted.id))
            session.execute(delete(TenantExport).where(TenantExport.tenant_id == offboarded.id))
            session.commit()


def test_a_plan_bought_during_an_offboarding_is_applied_without_promoting(plane: Plane) -> None:
    seeded = trial_tenant(plane, notices=1)
    with plane.provider.management() as session:
        offboard_id = export.request_offboard(session, seeded.id, confirm_slug=seeded.tenant.slug)
        session.commit()
    paid = things.purchase(plane.provider, seeded.tenant, things.product(plane.provider, plan="pro"),
                           "completed")  # a real purchase of the tenant's: apply_plan checks
    bought = PurchaseCompletedV1(
        purchase_id=paid.view.id, tenant_id=seeded.id, buyer_user_id=seeded.tenant.member("owner").user_id,
        product_code=paid.view.product_code, product_name="Pro", product_kind="plan", plan="pro",
        amount_minor=paid.view.amount_minor, currency="EUR", charge_id=paid.charge_id)
    envelope = Envelope(id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), type=bought.message_type,
                        version=1, handler="tenancy.apply_plan", payload=bought.model_dump(mode="json"),
                        origin="management", tenant_id=str(seeded.id), correlation_id=None)
    try:
        with plane.provider.management() as session:
            tenancy_handlers.apply_plan(HandlerContext(session, envelope, plane.provider), bought)
            session.commit()
        with plane.provider.management() as session:
            assert session.scalar(select(Tenant.plan).where(Tenant.id == seeded.id)) == "pro"
            assert session.scalar(select(func.count()).select_from(Promotion)
                                  .where(Promotion.tenant_id == seeded.id)) == 0
    finally:  # not sent: no later test's workers or beat may find it pending
        with plane.provider.management() as session:
            session.execute(delete(TenantExport).where(TenantExport.id == offboard_id))
            session.commit()


def tenant_status(plane: Plane, tenant_id: uuid.UUID) -> str:
    """The tenant's status in the management database."""
    with plane.provider.management() as session:
        return str(session.scalar(select(Tenant.status).where(Tenant.id == tenant_id)))


def routed(provider: DataProvider, tenant_id: uuid.UUID) -> bool:
    """True while the provider still routes the tenant somewhere."""
    try:
        provider.route(tenant_id)
    except NotFound:
        return False
    return True


def database_exists(plane: Plane, url: str) -> bool:
    """True if the server has the database of ``url``."""
    dsn = plane.services.server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            (database_name(url),)).fetchone() is not None


# --- a worker killed in the middle of an export -----------------------------------------------

def test_an_export_killed_midway_is_finished_after_a_restart(plane: Plane) -> None:
    seeded = trial_tenant(plane, notices=20_000)
    expected = rows_of(seeded.url, seeded.id)
    assert len(expected["notices"]) == 20_000
    worker = plane.worker
    assert worker is not None
    management = plane.provider.url_of("management")
    # Pause every export before it reads outbox (after inbox and notices: 20,000 rows are
    # already spooled to its files), and kill the worker while it waits there.
    with connect(management, autocommit=True) as pause:
        pause.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                      (export.checkpoint_name("table:outbox"),))
        export_id = start(plane, seeded)
        wait_for(lambda: waiting_at_checkpoint(management), timeout=60, message="the export to reach outbox")
        assert plane.job(export_id).status == "running"
        assert export.resumable(plane.provider, older_than=0) == []  # its runner holds it
        # A second runner (here, in the test process) finds the job held and leaves it be.
        second = export.run(plane.provider, build_storage(plane.settings), export_id)
        assert (second.status, second.step) == ("running", "requested")
        worker.kill()
    # Once its backend stops waiting at the checkpoint, the killed run's lock dies with its
    # connection: the job is free to resume.
    wait_for(lambda: (export_id, "export") in export.resumable(plane.provider, older_than=0),
             timeout=30, message="the killed run's lock to go")
    job = plane.job(export_id)
    assert (job.status, job.step, job.storage_key) == ("running", "requested", None)
    worker.start()
    processes.wait_until_ready(worker, worker.argv[worker.argv.index("-n") + 1])
    # What beat does every minute, sent now (the killed run's message stays unacknowledged).
    plane.app.extensions["allotment.celery"].send_task(
        "tasks.tenancy.resume_exports", args=[0], queue="tenancy")
    body = finished(plane, export_id)
    check_archive(plane, body, seeded, expected)


def test_a_job_that_keeps_failing_is_given_up_unless_it_already_deletes(plane: Plane, tmp_path: Path) -> None:
    # A storage that cannot be written (its folder is under a file): every run fails.
    (tmp_path / "a-file").write_text("not a folder")
    broken = LocalStorage(tmp_path / "a-file" / "storage", "secret", "http://127.0.0.1")
    seeded = trial_tenant(plane, notices=3)
    with plane.provider.management() as session:
        export_id = export.request_export(session, seeded.id)  # recorded, not sent: run here
        session.commit()
    for attempt in range(1, export.MAX_ATTEMPTS + 1):
        with pytest.raises(OSError):
            export.run(plane.provider, broken, export_id)
        job = plane.job(export_id)
        assert (job.status, job.attempts) == ("running", attempt)
        assert job.error is not None and "NotADirectoryError" in job.error
    given_up = export.run(plane.provider, broken, export_id)
    assert given_up.status == "failed" and given_up.finished
    assert (given_up.error or "").startswith(f"gave up after {export.MAX_ATTEMPTS} runs: NotADirectoryError")
    assert export_id not in [job_id for job_id, _ in export.resumable(plane.provider, older_than=0)]

    # An offboarding that archived is deleting the tenant: it goes on however many runs it took.
    doomed = trial_tenant(plane, notices=3)
    with plane.provider.management() as session:
        offboard_id = export.request_offboard(session, doomed.id, confirm_slug=doomed.tenant.slug)
        session.execute(update(TenantExport).where(TenantExport.id == offboard_id)
                        .values(step="archived", attempts=export.MAX_ATTEMPTS + 2))
        session.commit()
    finishing = export.run(plane.provider, broken, offboard_id)
    assert (finishing.status, finishing.step) == ("completed", "completed")
    assert rows_of(doomed.url, doomed.id) == {table: [] for table in TENANT_TABLES}

    # So does one whose run died after fencing the tenant but before recording its archive:
    # given up, it would leave a live tenant refusing every write.
    fenced = trial_tenant(plane, notices=3)
    with plane.provider.management() as session:
        fenced_id = export.request_offboard(session, fenced.id, confirm_slug=fenced.tenant.slug)
        session.execute(update(TenantExport).where(TenantExport.id == fenced_id)
                        .values(attempts=export.MAX_ATTEMPTS))
        session.commit()
    with connect(fenced.url, autocommit=True) as conn:
        conn.execute("INSERT INTO tenant_fences (tenant_id, moved_to) VALUES (%s, %s)",
                     (fenced.id, export.OFFBOARDED))
    done = export.run(plane.provider, build_storage(plane.settings), fenced_id)
    assert (done.status, done.step) == ("completed", "completed")
    assert tenant_status(plane, fenced.id) == "deleted"
    assert rows_of(fenced.url, fenced.id) == {table: [] for table in TENANT_TABLES}


def waiting_at_checkpoint(url: str) -> bool:
    """True once a run waits at an export checkpoint (a shared advisory lock someone holds)."""
    with connect(url) as conn:
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event = 'advisory' AND query LIKE '%pg_advisory_xact_lock_shared(hashtextextended(%'")
        return waiting.fetchone() == (1,)


# --- bad input ----------------------------------------------------------------------------------

def exports_recorded(plane: Plane) -> int:
    """How many export rows exist."""
    with plane.provider.management() as session:
        return int(session.scalar(select(func.count()).select_from(TenantExport)) or 0)


def test_bad_requests_are_refused_and_record_nothing(plane: Plane) -> None:
    seeded = trial_tenant(plane, notices=1)
    client, operator = plane.app.test_client(), plane.operator
    before = exports_recorded(plane)
    unknown = uuid.uuid4()
    assert_refused(client.post(f"/api/v1/operations/tenants/{unknown}/exports", headers=operator),
                   404, "tenant_id")
    assert_refused(client.post(f"/api/v1/operations/tenants/{unknown}/offboard", headers=operator,
                               json={"confirm_slug": seeded.tenant.slug}), 404, "tenant_id")
    offboard = f"/api/v1/operations/tenants/{seeded.id}/offboard"
    assert_refused(client.post(offboard, headers=operator, json={}), 422, "confirm_slug")
    assert_refused(client.post(offboard, headers=operator, json={"confirm_slug": "someone-else"}),
                   422, "confirm_slug")
    assert_refused(client.post(offboard, headers=operator,
                               json={"confirm_slug": seeded.tenant.slug, "extra": 1}), 422, "extra")
    assert_refused(client.post(offboard, headers=operator, data="x"), 415, "Content-Type")
    assert_refused(client.get(f"/api/v1/operations/exports/{unknown}", headers=operator), 404, "export_id")
    assert exports_recorded(plane) == before
    assert tenant_status(plane, seeded.id) == "trial"


def test_only_operators_may_export_or_offboard(plane: Plane) -> None:
    seeded = trial_tenant(plane, notices=1)
    client = plane.app.test_client()
    before = exports_recorded(plane)
    owner = tenants.bearer(tenants.access_token(client, seeded.tenant.member("owner")))
    member = tenants.bearer(tenants.access_token(client, tenants.create_account(plane.provider)))
    for headers in (owner, member):
        assert_refused(client.post(f"/api/v1/operations/tenants/{seeded.id}/exports", headers=headers),
                       403, None)
        assert_refused(client.post(f"/api/v1/operations/tenants/{seeded.id}/offboard", headers=headers,
                                   json={"confirm_slug": seeded.tenant.slug}), 403, None)
        assert_refused(client.get(f"/api/v1/operations/exports/{uuid.uuid4()}", headers=headers), 403, None)
    assert_refused(client.post(f"/api/v1/operations/tenants/{seeded.id}/exports"), 401, "Authorization")
    assert exports_recorded(plane) == before


def test_the_cli_offboards_only_with_yes_and_a_known_slug(plane: Plane) -> None:
    seeded = trial_tenant(plane, notices=1)
    before = exports_recorded(plane)
    runner = plane.app.test_cli_runner()
    refused = runner.invoke(args=["tenants", "offboard", seeded.tenant.slug])
    assert refused.exit_code != 0 and "--yes" in refused.output
    unknown = runner.invoke(args=["tenants", "export", "no-such-tenant-slug"])
    assert unknown.exit_code != 0 and "no tenant" in unknown.output
    assert exports_recorded(plane) == before
    assert tenant_status(plane, seeded.id) == "trial"
    confirmed = runner.invoke(args=["tenants", "offboard", seeded.tenant.slug, "--yes"])
    assert confirmed.exit_code == 0, confirmed.output
    assert f"{seeded.tenant.slug}: offboard completed at completed" in confirmed.output
    assert tenant_status(plane, seeded.id) == "deleted"
    assert rows_of(seeded.url, seeded.id) == {table: [] for table in TENANT_TABLES}
