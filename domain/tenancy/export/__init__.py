"""Tenant export and offboarding: persisted, resumable procedures (issue 4, item 8).

A ``tenant_exports`` row is the job; ``run`` does the steps it has not recorded yet, each
idempotent, under a PostgreSQL advisory lock per export (held on a management connection
for the whole run and released by the server when the process dies), so two runners never
overlap and a run after a crash finishes the job:

========  ===================================================================================
archived  every row the tenant owns, as JSON Lines (one file per table) in a ``.tar.gz`` with
          a ``manifest.json`` (``export.archive``), spooled to a temporary folder and uploaded
          to the storage as ``tenants/<tenant>/exports/<export>.tar.gz`` (a re-run rebuilds and
          replaces it). Offboarding holds the tenant's writes meanwhile (the data provider's
          write gate, on its trial or dedicated database) and fences it there before letting
          go: no write lands after the archive only to be purged or dropped.
purged    (offboard) its dedicated database dropped, or its rows deleted from every table of
          the trial database, children first, in batches
deleted   (offboard) the tenant marked deleted; every process told to stop routing to it
========  ===================================================================================

Before each step (and each table, and the upload) a run passes a checkpoint lock: holding
it pauses every export there (``checkpoint_name``).
"""
from __future__ import annotations

import json
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, text, update
from sqlalchemy.orm import Session

from domain.assets.storage import Storage
from domain.db import migrate
from domain.db.base import utcnow
from domain.db.provider import MANAGEMENT, TRIAL, DataProvider, write_lock_key
from domain.errors import Conflict, DomainError, NotFound
from domain.tenancy import copying, queries
from domain.tenancy.export.archive import ARCHIVED_PERCENT, Progress, build_archive, db_key_of, json_value
from domain.tenancy.models import Tenant, TenantExport
from domain.tenancy.tables import tenant_tables

log = logging.getLogger(__name__)

STEPS: dict[str, tuple[str, ...]] = {
    "export": ("requested", "archived", "completed"),
    "offboard": ("requested", "archived", "purged", "deleted", "completed"),
}
PERCENT = {"requested": 0, "archived": ARCHIVED_PERCENT, "purged": 95, "deleted": 98, "completed": 100}
ACTIVE = queries.UNDER_WAY
# Runs of a job before it is given up as failed, while giving up loses nothing: an export at
# any step, an offboarding before it fenced its tenant. Past that it is deleting the tenant
# and goes on until it is done (its last error stays on the row for operators).
MAX_ATTEMPTS = 5
FINISHED = ("completed", "failed")
LINK_SECONDS = 3600
# Where a fence says an offboarded tenant went: nowhere (its writes are refused).
OFFBOARDED = "offboarded"


class WrongSlug(DomainError):
    """An offboarding not confirmed with the tenant's own slug."""

    def __init__(self) -> None:
        super().__init__("must be the tenant's slug, to confirm its data is to be deleted",
                         field="confirm_slug")


# -- requesting ------------------------------------------------------------------------
def request_export(session: Session, tenant_id: uuid.UUID, *,
                   requested_by: uuid.UUID | None = None) -> uuid.UUID:
    """Record an export of the tenant's rows (pending); the caller sends it to a worker."""
    tenant = _live_tenant(session, tenant_id)
    return _record(session, tenant, "export", requested_by)


def request_offboard(session: Session, tenant_id: uuid.UUID, *, confirm_slug: str,
                     requested_by: uuid.UUID | None = None) -> uuid.UUID:
    """Record an offboarding (export, then delete every row), confirmed by the tenant's slug."""
    tenant = _live_tenant(session, tenant_id)
    if confirm_slug != tenant.slug:
        raise WrongSlug()
    if queries.offboarding_under_way(session, tenant.id) is not None:
        raise Conflict("an offboarding of this tenant is under way", field="tenant_id")
    if queries.promotion_under_way(session, tenant.id) is not None:
        raise Conflict("the tenant is moving to a database of its own; try again once it is done",
                       field="tenant_id")
    return _record(session, tenant, "offboard", requested_by)


def _live_tenant(session: Session, tenant_id: uuid.UUID) -> Tenant:
    # Locked: a tenant's offboarding and a promotion or a second offboarding do not interleave.
    tenant = session.get(Tenant, tenant_id, with_for_update=True)
    if tenant is None or tenant.status == "deleted":
        raise NotFound("no such tenant", field="tenant_id")
    if tenant.status == "promoting":
        raise Conflict("the tenant is moving to a database of its own; try again once it is done",
                       field="tenant_id")
    return tenant


def _record(session: Session, tenant: Tenant, kind: str, requested_by: uuid.UUID | None) -> uuid.UUID:
    job = TenantExport(id=uuid.uuid4(), tenant_id=tenant.id, kind=kind, status="pending",
                       step="requested", rows=0, size_bytes=0, requested_by=requested_by)
    session.add(job)
    session.flush()
    return job.id


# -- reading ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportStatus:
    """Where an export or offboarding stands (the status URL, the CLI, Celery task state)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str
    status: str
    step: str
    percent: int
    rows: int
    size_bytes: int
    sha256: str | None
    storage_key: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    download_url: str | None = None

    @property
    def finished(self) -> bool:
        """True once it completed or failed."""
        return self.status in FINISHED

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return json.loads(json.dumps(asdict(self), default=json_value))  # type: ignore[no-any-return]


def export_status(session: Session, export_id: uuid.UUID, storage: Storage | None = None,
                  link_seconds: int = LINK_SECONDS) -> ExportStatus:
    """An export's status; with ``storage``, a signed download link once it is archived."""
    job = session.get(TenantExport, export_id)
    if job is None:
        raise NotFound("no such export", field="export_id")
    url = None
    if storage is not None and job.status == "completed" and job.storage_key:
        url = storage.download_url(job.storage_key, expires_in=link_seconds,
                                   filename=job.storage_key.rsplit("/", 1)[-1])
    return ExportStatus(job.id, job.tenant_id, job.kind, job.status, job.step,
                        PERCENT.get(job.step, 0), job.rows, job.size_bytes, job.sha256,
                        job.storage_key, job.error, job.created_at, job.finished_at, url)


def resumable(provider: DataProvider, *, older_than: float) -> list[tuple[uuid.UUID, str]]:
    """(id, kind) of unfinished jobs recorded over ``older_than`` seconds ago that no runner
    holds: their send was lost or their runner died (beat sends them again)."""
    cutoff = utcnow().timestamp() - older_than
    with provider.management() as session:
        rows = session.execute(select(TenantExport.id, TenantExport.kind, TenantExport.created_at)
                               .where(TenantExport.status.in_(ACTIVE))
                               .order_by(TenantExport.created_at)).all()
    waiting = [(r.id, r.kind) for r in rows if r.created_at.timestamp() <= cutoff]
    with _lock_connection(provider) as conn:
        return [(job_id, kind) for job_id, kind in waiting if _free(conn, job_id)]


# -- running ---------------------------------------------------------------------------
def run(provider: DataProvider, storage: Storage, export_id: uuid.UUID,
        progress: Progress | None = None) -> ExportStatus:
    """Run (or resume) an export or offboarding to its end; at most one runner at a time.

    A run that finds another holding the job returns at once with the job as it stands.
    """
    with provider.management() as session:
        export_status(session, export_id)  # NotFound before anything else
    with _exclusive(provider, export_id) as conn:
        if conn is not None:
            _Runner(provider, storage, export_id, progress or (lambda *_: None), conn).run()
    with provider.management() as session:
        return export_status(session, export_id)


@contextmanager
def _lock_connection(provider: DataProvider) -> Iterator[Connection]:
    with provider.engine(provider.url_of(MANAGEMENT)).connect() as conn:
        yield conn


_LOCK_KEY = "hashtextextended('tenant_export:' || :job, 0)"


def checkpoint_name(stage: str) -> str:
    """The name of the advisory lock (``pg_advisory_lock(hashtextextended(name, 0))`` on the
    management database) every run passes through before ``stage``: a step (``archived``,
    ``purged``, ...), ``table:<name>`` before the archive reads a tenant table, or ``upload``.
    Holding it pauses every export there (an operator easing a database's load; the crash
    drill, to kill a worker at a known point)."""
    return f"tenant_export:checkpoint:{stage}"


def _free(conn: Connection, export_id: uuid.UUID) -> bool:
    """True if no runner holds the job (the lock is taken and given back at once)."""
    got = bool(conn.scalar(text(f"SELECT pg_try_advisory_lock({_LOCK_KEY})"), {"job": str(export_id)}))
    if got:
        conn.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEY})"), {"job": str(export_id)})
    conn.commit()
    return got


@contextmanager
def _exclusive(provider: DataProvider, export_id: uuid.UUID) -> Iterator[Connection | None]:
    """A session-level advisory lock for one run of a job, which dies with its connection;
    yields that connection (None if another run holds the job)."""
    with _lock_connection(provider) as conn:
        held = bool(conn.scalar(text(f"SELECT pg_try_advisory_lock({_LOCK_KEY})"),
                                {"job": str(export_id)}))
        conn.commit()  # the lock is the session's; no transaction stays open for the run
        try:
            yield conn if held else None
        finally:
            if held:
                conn.execute(text(f"SELECT pg_advisory_unlock({_LOCK_KEY})"), {"job": str(export_id)})
                conn.commit()


class _Runner:
    """One run of one export or offboarding."""

    def __init__(self, provider: DataProvider, storage: Storage, export_id: uuid.UUID,
                 progress: Progress, lock: Connection) -> None:
        self.provider, self.storage, self.id, self.progress = provider, storage, export_id, progress
        self.lock = lock

    def checkpoint(self, stage: str) -> None:
        """Wait while someone holds the checkpoint lock of ``stage`` (see ``checkpoint_name``)."""
        self.lock.execute(text("SELECT pg_advisory_xact_lock_shared(hashtextextended(:name, 0))"),
                          {"name": checkpoint_name(stage)})
        self.lock.commit()

    def load(self) -> TenantExport:
        with self.provider.management() as session:
            job = session.get(TenantExport, self.id)
            assert job is not None
            return job

    def record(self, **values: Any) -> None:
        with self.provider.management() as session:
            session.execute(update(TenantExport).where(TenantExport.id == self.id).values(**values))
            session.commit()
        if "step" in values:
            self.progress(values["step"], PERCENT[values["step"]], {})

    def run(self) -> None:
        job = self.load()
        if job.status in FINISHED:
            return
        if job.attempts >= MAX_ATTEMPTS and self.may_give_up(job):
            log.error("export %s gave up after %s runs: %s", self.id, job.attempts, job.error)
            self.record(status="failed", finished_at=utcnow(),
                        error=f"gave up after {job.attempts} runs: {job.error}"[:2000])
            return
        self.record(status="running", attempts=job.attempts + 1)
        try:
            for step in STEPS[job.kind][STEPS[job.kind].index(job.step) + 1:]:
                self.checkpoint(step)
                getattr(self, step)(job.tenant_id)
        except DomainError as exc:  # the job cannot be done (the tenant is gone): say why
            log.warning("export %s failed: %s", self.id, exc.reason)
            self.record(status="failed", error=exc.reason, finished_at=utcnow())
        except Exception as exc:
            # Left unfinished: the next run (beat re-sends it) resumes after the last step done.
            self.record(error=f"{type(exc).__name__}: {exc}"[:2000])
            raise

    def may_give_up(self, job: TenantExport) -> bool:
        """True while giving the job up loses nothing: an export, or an offboarding that has
        not fenced its tenant yet (a run that died between the fence and recording the
        archive leaves the tenant refusing writes: only finishing lets it go)."""
        if job.kind == "export":
            return True
        if job.step != "requested":
            return False
        url = self.provider.url_of(db_key_of(self.provider, job.tenant_id))
        with copying.connect(url, autocommit=True) as conn:
            return conn.execute("SELECT 1 FROM tenant_fences WHERE tenant_id = %s AND moved_to = %s",
                                (job.tenant_id, OFFBOARDED)).fetchone() is None

    # the steps
    def archived(self, tenant_id: uuid.UUID) -> None:
        key = f"tenants/{tenant_id}/exports/{self.id}.tar.gz"
        # Migrations of the tenant's database wait while its archive's snapshot is read
        # (migrate.migrations_wait), the lock taken before the tenant's write lock.
        url = self.provider.url_of(db_key_of(self.provider, tenant_id))
        with copying.connect(url, autocommit=True) as held, migrate.migrations_wait(held), \
                self.writes_stopped(tenant_id) as fence, \
                tempfile.TemporaryDirectory(prefix="allotment-export-") as folder:
            archive = build_archive(self.provider, tenant_id, self.id, Path(folder),
                                    progress=self.progress, checkpoint=self.checkpoint)
            self.checkpoint("upload")
            with archive.path.open("rb") as source:
                size = self.storage.put(key, source, content_type="application/gzip")
            fence()
        self.record(step="archived", storage_key=key, rows=archive.rows, size_bytes=size,
                    sha256=archive.sha256, error=None)

    @contextmanager
    def writes_stopped(self, tenant_id: uuid.UUID) -> Iterator[Callable[[], None]]:
        """Offboarding (a trial or a dedicated tenant alike): hold its writes (the data
        provider's write gate) on the database it lives in while the archive is made, and
        fence it there before letting go, so no write lands after the archive only to be
        purged or dropped: a writer either committed before the lock (its rows are in the
        archive) or waits and is refused with ``TenantMoved``. Yields the fence to put up
        (a no-op for a plain export, which holds nothing).

        The lock is the connection's (session level): a run that dies here loses it with its
        connection, and the re-run takes it again and rebuilds the archive; the fence insert
        is idempotent."""
        if self.load().kind != "offboard":
            yield lambda: None
            return
        lock_key = write_lock_key(tenant_id)
        url = self.provider.url_of(db_key_of(self.provider, tenant_id))
        with copying.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
            try:
                yield lambda: conn.execute(
                    "INSERT INTO tenant_fences (tenant_id, moved_to) VALUES (%s, %s) "
                    "ON CONFLICT (tenant_id) DO NOTHING", (tenant_id, OFFBOARDED))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))

    def purged(self, tenant_id: uuid.UUID) -> None:
        db_key = db_key_of(self.provider, tenant_id)
        if db_key == TRIAL:
            url = self.provider.url_of(TRIAL)
            with self.provider.engine(url).connect() as conn:
                tables = tenant_tables(conn)
            with copying.connect(url, autocommit=True) as trial:
                copying.delete_rows(trial, tables, tenant_id)
        else:
            migrate.drop_database(self.provider.url_of(db_key))
        self.record(step="purged")

    def deleted(self, tenant_id: uuid.UUID) -> None:
        with self.provider.management() as session:
            session.execute(update(Tenant).where(Tenant.id == tenant_id).values(status="deleted"))
            session.commit()
        # Every process drops its cached route at once (re-announced on a re-run: harmless).
        self.provider.routing_changed(tenant_id)
        self.record(step="deleted")

    def completed(self, tenant_id: uuid.UUID) -> None:
        self.record(step="completed", status="completed", finished_at=utcnow(), error=None)
