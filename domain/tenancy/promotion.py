"""Live promotion of a trial tenant to a database of its own (DESIGN §5).

A promotion is a row in ``promotions`` and a procedure that runs it step by step. Every
step is idempotent and recorded when done, so a run that dies anywhere is finished by the
next run (the relay re-sends the command, beat resumes unfinished promotions, an operator
re-runs ``flask tenants promote``):

==========  ==============================================================================
placed      a server is chosen by the placement policy and a database name fixed
created     the database exists on that server
migrated    it is at the tenant schema's head
copied      under the tenant's write lock: its rows copied from a snapshot of the trial
            database, in dependency order, with binary COPY (bounded memory)
verified    row counts and checksums per table agree between the two databases
fenced      a fence in the trial database refuses any later write of the tenant there
switched    routing points at the new database; every process is told
purged      after the route caches expired, the tenant's trial rows are deleted
==========  ==============================================================================

Writes are held back only from ``copied`` to ``switched``: the tenant's writers wait on
its write lock (the data provider's write gate), reads keep going to the trial database.
A run that dies inside that window releases the lock with its connection; the next run
copies again from the start of the window (a copy not fenced may be stale). Before the
switch, a run that cannot go on (a checksum mismatch, a server gone for good) cleans up:
it drops the new database, lifts the fence and leaves the tenant on the trial database.

Operators can pause every promotion before a step by holding the checkpoint lock of that
step on the management database (``checkpoint_lock``); the crash drill uses it to stop a
real worker at each step and kill it there.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from alembic.util import CommandError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from config.settings import database_name, database_on
from domain.db import migrate
from domain.db.base import utcnow
from domain.db.provider import TRIAL, DataProvider, dedicated_key, write_lock_key
from domain.errors import Conflict, NotFound
from domain.messaging import outbox
from domain.messaging.contracts.tenancy import PromoteTenantV1, TenantPromotedV1
from domain.messaging.outbox import Envelope
from domain.tenancy import copying, queries
from domain.tenancy.models import Promotion, Tenant
from domain.tenancy.placement import choose_server
from domain.tenancy.tables import tenant_tables

log = logging.getLogger(__name__)

STEPS: tuple[str, ...] = ("requested", "placed", "created", "migrated", "copied", "verified",
                          "fenced", "switched", "purged")
# How far along the whole promotion is when each step is done.
PERCENT = {"requested": 0, "placed": 2, "created": 5, "migrated": 15, "copied": 75,
           "verified": 85, "fenced": 88, "switched": 92, "purged": 100}
# A run that keeps failing on something other than the data gives up after this many runs.
MAX_ATTEMPTS = 5
MAX_RESUME_SECONDS = 3600
CHECKPOINT_CLASS = 0x70726F6D  # "prom": the first key of every checkpoint lock
ACTIVE = queries.UNDER_WAY


class WaitingForMigrations(Exception):
    """The trial database is at an older revision than the new one (a deploy not yet
    migrated everywhere): the run stops, and is not counted as one of its attempts."""


class PromotionAborted(Exception):
    """The promotion cannot go on; clean up and leave the tenant on the trial database."""


@dataclass(frozen=True)
class Progress:
    """Where a promotion stands (the API, the admin page, the CLI and Flower show it)."""

    promotion_id: str
    tenant_id: str
    status: str
    step: str
    percent: int
    rows_total: int
    rows_copied: int
    server: str | None
    database: str | None
    write_stall_ms: int | None
    error: str | None

    @property
    def finished(self) -> bool:
        """True once the promotion completed or failed."""
        return self.status in ("completed", "failed")

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (Celery task state meta)."""
        return asdict(self)


def progress_of(promotion: Promotion) -> Progress:
    """A promotion row as ``Progress``."""
    return Progress(str(promotion.id), str(promotion.tenant_id), promotion.status, promotion.step,
                    promotion.percent, promotion.rows_total, promotion.rows_copied,
                    promotion.server, promotion.database, promotion.write_stall_ms,
                    promotion.error)


def checkpoint_lock(step: str) -> tuple[int, int]:
    """The advisory lock (two int keys) a run passes through before starting ``step``."""
    return CHECKPOINT_CLASS, STEPS.index(step)


# -- requesting ------------------------------------------------------------------------
def request_promotion(session: Session, tenant_id: uuid.UUID, *, reason: str,
                      purchase_id: uuid.UUID | None = None, requested_by: uuid.UUID | None = None,
                      correlation_id: str | None = None) -> uuid.UUID:
    """Record a promotion and its ``PromoteTenant`` command; return its id.

    A tenant already promoting gets its running promotion back; a tenant with a database
    of its own, or being offboarded, is refused (409). (The tenant row is locked: a promotion
    and an offboarding are requested one after the other, never both.)
    """
    tenant = session.get(Tenant, tenant_id, with_for_update=True)
    if tenant is None or tenant.status == "deleted":
        raise NotFound("no such tenant", field="tenant")
    active = queries.promotion_under_way(session, tenant_id)
    if active is not None:
        return active
    if tenant.status != "trial":
        raise Conflict(f"the tenant is {tenant.status}, not on trial", field="tenant")
    if queries.offboarding_under_way(session, tenant_id) is not None:
        # Its purge would drop the database a promotion moved the tenant to.
        raise Conflict("the tenant is being offboarded", field="tenant")
    promotion = Promotion(id=uuid.uuid4(), tenant_id=tenant_id, status="pending", step="requested",
                          percent=0, reason=reason, purchase_id=purchase_id,
                          requested_by=requested_by, tables={}, rows_total=0, rows_copied=0,
                          attempts=0)
    session.add(promotion)
    session.flush()
    outbox.record(session, PromoteTenantV1(promotion_id=promotion.id, tenant_id=tenant_id),
                  tenant_id=tenant_id, correlation_id=correlation_id)
    return promotion.id


def current(session: Session, tenant_id: uuid.UUID) -> Promotion | None:
    """The tenant's latest promotion, if it ever had one."""
    return session.scalar(select(Promotion).where(Promotion.tenant_id == tenant_id)
                          .order_by(Promotion.created_at.desc()).limit(1))


def get(session: Session, promotion_id: uuid.UUID) -> Promotion:
    """A promotion by id (NotFound otherwise)."""
    promotion = session.get(Promotion, promotion_id)
    if promotion is None:
        raise NotFound("no such promotion", field="promotion_id")
    return promotion


def progress(session: Session, promotion_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None) -> Progress:
    """Where a promotion stands; with ``tenant_id``, only that tenant's (NotFound otherwise)."""
    promotion = get(session, promotion_id)
    if tenant_id is not None and promotion.tenant_id != tenant_id:
        raise NotFound("no such promotion", field="promotion_id")
    return progress_of(promotion)


def latest_progress(session: Session, tenant_id: uuid.UUID) -> Progress | None:
    """Where the tenant's latest promotion stands, if it ever had one."""
    promotion = current(session, tenant_id)
    return progress_of(promotion) if promotion else None


def resume_delay(base_seconds: float, attempts: int) -> timedelta:
    """How long after a promotion's last recorded progress beat runs it again: ``base_seconds``
    after its first run, twice as long after each run since (at most an hour). A run that
    makes progress records it, so only a promotion whose runs keep dying or failing waits
    longer: with the default 30 s, the fifth and last run of a promotion whose placement
    servers are down comes 7.5 minutes after the first, not 2 (before, beat sent one every 30 s)."""
    return timedelta(seconds=min(base_seconds * 2 ** max(attempts - 1, 0), MAX_RESUME_SECONDS))


def due_for_resume(session: Session, *, now: datetime, base_seconds: float) -> list[uuid.UUID]:
    """Promotions not completed or failed whose ``resume_delay`` has passed (beat resumes them)."""
    rows = session.execute(select(Promotion.id, Promotion.attempts,
                                  func.coalesce(Promotion.updated_at, Promotion.created_at))
                           .where(Promotion.status.in_(ACTIVE)).order_by(Promotion.created_at)).all()
    return [promotion_id for promotion_id, attempts, last in rows
            if last + resume_delay(base_seconds, attempts) <= now]


# -- running ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    """What a run did: where the promotion stands, and the messages to publish."""

    progress: Progress
    emitted: list[Envelope]
    busy: bool = False  # another run holds the promotion


def run(provider: DataProvider, promotion_id: uuid.UUID,
        report: Callable[[Progress], None] | None = None, *, tenant_id: uuid.UUID | None = None) -> RunResult:
    """Run (or resume) a promotion to its end; at most one run per promotion at a time. With
    ``tenant_id`` (a tenant's command), only a promotion of that tenant: another is not found."""
    with provider.management() as session:
        progress(session, promotion_id, tenant_id=tenant_id)  # NotFound before anything else
    runner = _Runner(provider, promotion_id, report or (lambda _: None))
    with _exclusive(provider, promotion_id) as (held, conn):
        if not held:
            return RunResult(runner.progress(), [], busy=True)
        runner.checkpoints = conn
        return runner.run()


@contextmanager
def _exclusive(provider: DataProvider, promotion_id: uuid.UUID) -> Iterator[tuple[bool, psycopg.Connection]]:
    """A session-level advisory lock on the management database for one run of a promotion;
    it dies with the connection, so a killed run never blocks the next one."""
    with copying.connect(provider.url_of("management"), autocommit=True) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (write_lock_key(promotion_id),)).fetchone()
        held = bool(row and row[0])
        try:
            yield held, conn
        finally:
            if held:
                conn.execute("SELECT pg_advisory_unlock(%s)", (write_lock_key(promotion_id),))


class _Runner:
    """One run of one promotion."""

    def __init__(self, provider: DataProvider, promotion_id: uuid.UUID,
                 report: Callable[[Progress], None]) -> None:
        self.provider = provider
        self.id = promotion_id
        self.report = report
        self.checkpoints: psycopg.Connection | None = None
        self._tables: list[Any] | None = None

    # recording
    def progress(self) -> Progress:
        with self.provider.management() as session:
            return progress_of(get(session, self.id))

    def load(self) -> Promotion:
        with self.provider.management() as session:
            return get(session, self.id)

    def record(self, **values: Any) -> Progress:
        values["updated_at"] = utcnow()
        if "step" in values and "percent" not in values:
            values["percent"] = PERCENT[values["step"]]
        with self.provider.management() as session:
            session.execute(update(Promotion).where(Promotion.id == self.id).values(**values))
            session.commit()
        progress = self.progress()
        self.report(progress)
        return progress

    def checkpoint(self, step: str) -> None:
        assert self.checkpoints is not None
        self.checkpoints.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", checkpoint_lock(step))

    # the procedure
    def run(self) -> RunResult:
        promotion = self.load()
        if promotion.status in ("completed", "failed"):
            return RunResult(progress_of(promotion), [])
        self.record(status="running", attempts=promotion.attempts + 1, error=None)
        try:
            emitted = self.steps(promotion.tenant_id)
        except PromotionAborted as exc:
            log.warning("promotion %s aborted: %s", self.id, exc)
            self.clean_up(promotion.tenant_id, str(exc))
            return RunResult(self.progress(), [])
        except WaitingForMigrations as exc:  # not a failed run: it is not counted against the promotion
            log.warning("promotion %s waits: %s", self.id, exc)
            self.record(attempts=promotion.attempts, error=str(exc)[:2000])
            raise
        except Exception as exc:
            promotion = self.load()
            reason = f"{type(exc).__name__}: {exc}"
            if promotion.attempts >= MAX_ATTEMPTS and STEPS.index(promotion.step) < STEPS.index("switched"):
                log.exception("promotion %s gives up after %s runs", self.id, promotion.attempts)
                self.clean_up(promotion.tenant_id, f"gave up after {promotion.attempts} runs: {reason}")
                return RunResult(self.progress(), [])
            self.record(error=reason[:2000])
            raise
        return RunResult(self.progress(), emitted)

    def steps(self, tenant_id: uuid.UUID) -> list[Envelope]:
        promotion = self.load()
        if promotion.step == "requested":
            self.checkpoint("placed")
            self.place(tenant_id)
        promotion = self.load()
        url = database_on(self.provider.server_url(promotion.server or ""), promotion.database or "")
        if promotion.step == "placed":
            self.checkpoint("created")
            migrate.ensure_database(url)
            self.record(step="created")
        if self.load().step == "created":
            self.checkpoint("migrated")
            migrate.upgrade("tenant", url, self.provider.settings.tenant_db_role)
            self.record(step="migrated")
        if self.load().step in ("migrated", "copied", "verified"):
            # A copy from an earlier run is stale: writes went on after its lock was lost.
            self.move_under_lock(tenant_id, url)
        if self.load().step == "fenced":
            # An earlier run fenced the tenant and died before switching: nothing was
            # written since, so the copy stands; check it again and switch.
            self.checkpoint("switched")
            self.verify(tenant_id, url)
            self.switch(tenant_id)
        if self.load().step == "switched":
            self.checkpoint("purged")
            return self.purge(tenant_id)
        return []

    def place(self, tenant_id: uuid.UUID) -> None:
        with self.provider.management() as session:
            server = choose_server(self.provider, session, promotion_id=self.id)
            session.execute(update(Tenant).where(Tenant.id == tenant_id, Tenant.status == "trial")
                            .values(status="promoting"))
            session.commit()
        prefix = database_name(self.provider.settings.database_url).split("?")[0][:24]
        self.record(step="placed", server=server, database=f"{prefix}_t_{tenant_id.hex}")

    def move_under_lock(self, tenant_id: uuid.UUID, url: str) -> None:
        """Copy, verify, fence and switch while the tenant's writes wait, and migrations of the
        trial database wait too (they would change what is copied)."""
        with copying.connect(self.provider.url_of(TRIAL), autocommit=True) as lock, \
                migrate.migrations_wait(lock):
            self.checkpoint("copied")
            self.match_schema(url)  # before the writes wait
            self.move_while_writes_wait(lock, tenant_id, url)

    def match_schema(self, url: str) -> None:
        """Bring the new database to the trial database's revision, which a deploy may have
        moved on since this promotion migrated it (a run resumed after it), and reflect the
        tables to copy afresh. A trial database behind it (a deploy not yet migrated) waits:
        the promotion fails this run and is resumed later."""
        trial = migrate.current_revision(self.provider.url_of(TRIAL))
        ours, role = migrate.current_revision(url), self.provider.settings.tenant_db_role
        if ours != trial:
            with contextlib.suppress(CommandError):  # an upgrade cannot go back: checked below
                migrate.upgrade("tenant", url, role, revision=trial or "base")
            if migrate.current_revision(url) != trial:  # the trial database is behind
                raise WaitingForMigrations(f"the new database is at revision {ours}, the trial database at "
                                           f"{trial}: migrate every tenant database, then the promotion "
                                           "resumes")
        self._tables = None

    def move_while_writes_wait(self, lock: psycopg.Connection, tenant_id: uuid.UUID, url: str) -> None:
        """Copy, verify, fence and switch holding the tenant's write lock on ``lock``."""
        self.tables(url)
        lock.execute("SELECT pg_advisory_lock(%s)", (write_lock_key(tenant_id),))
        held_since = time.monotonic()
        try:
            self.copy(tenant_id, url)
            self.checkpoint("verified")
            self.verify(tenant_id, url)
            self.record(step="verified")
            self.checkpoint("fenced")
            lock.execute("INSERT INTO tenant_fences (tenant_id, moved_to) VALUES (%s, %s) "
                         "ON CONFLICT (tenant_id) DO NOTHING",
                         (tenant_id, self.target_key()))
            self.record(step="fenced")
            self.checkpoint("switched")
            self.switch(tenant_id, stall_ms=int((time.monotonic() - held_since) * 1000))
        finally:
            lock.execute("SELECT pg_advisory_unlock(%s)", (write_lock_key(tenant_id),))

    def target_key(self) -> str:
        promotion = self.load()
        return dedicated_key(promotion.server or "", promotion.database or "")

    def tables(self, url: str) -> list[Any]:
        """The tables of the new database at ``url``, reflected once per run (it costs ~0.1 s)
        and again when ``match_schema`` brought it to the trial database's revision."""
        if self._tables is None:
            self._tables = self.reflect(url)
        return self._tables

    def reflect(self, url: str) -> list[Any]:
        """The tenant tables of the database at ``url``, parents first."""
        with self.provider.engine(url).connect() as conn:
            return tenant_tables(conn)

    def copy(self, tenant_id: uuid.UUID, url: str) -> None:
        tables = self.tables(url)
        with copying.connect(self.provider.url_of(TRIAL)) as source, copying.connect(url) as target:
            # One snapshot for the counts, the copy and the checksums of every table.
            source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            source.read_only = True
            # The snapshot's checksums first: they count the rows too.
            sums = {t.name: copying.checksum(source, t, tenant_id) for t in tables}
            total = sum(s.rows for s in sums.values())
            self.record(rows_total=total, rows_copied=0)
            copying.delete_rows(target, tables, tenant_id)  # what a dead run left
            copied = 0
            for table in tables:
                copying.copy_table(source, target, table, tenant_id)
                copied += sums[table.name].rows
                span = PERCENT["copied"] - PERCENT["migrated"]
                self.record(rows_copied=copied,
                            percent=PERCENT["migrated"] + (span * copied // total if total else span))
            target.commit()
            source.commit()
        self.record(step="copied", tables={name: s.as_dict() for name, s in sums.items()})

    def verify(self, tenant_id: uuid.UUID, url: str) -> None:
        expected = self.load().tables
        with copying.connect(url) as target:
            for table in self.tables(url):
                got = copying.checksum(target, table, tenant_id).as_dict()
                want = expected.get(table.name, {"rows": 0, "checksum": "0"})
                if got != want:
                    raise PromotionAborted(
                        f"table {table.name}: {got['rows']} rows (checksum {got['checksum']}) in the "
                        f"new database, {want['rows']} (checksum {want['checksum']}) in the trial database")

    def switch(self, tenant_id: uuid.UUID, stall_ms: int | None = None) -> None:
        promotion = self.load()
        with self.provider.management() as session:
            session.execute(update(Tenant).where(Tenant.id == tenant_id).values(
                status="dedicated", placement_server=promotion.server, database_name=promotion.database))
            values: dict[str, Any] = {"step": "switched", "percent": PERCENT["switched"],
                                      "switched_at": utcnow(), "updated_at": utcnow()}
            if stall_ms is not None:
                values["write_stall_ms"] = stall_ms
            session.execute(update(Promotion).where(Promotion.id == self.id).values(**values))
            session.commit()
        self.provider.routing_changed(tenant_id)
        self.report(self.progress())

    def purge(self, tenant_id: uuid.UUID) -> list[Envelope]:
        promotion = self.load()
        grace = self.provider.settings.promotion_purge_grace_seconds
        if promotion.switched_at is not None:
            # Processes that cached the trial route before the switch still read there
            # until their cache expires; their writes are fenced already.
            remaining = grace - (utcnow() - promotion.switched_at).total_seconds()
            if remaining > 0:
                time.sleep(remaining)
        with copying.connect(self.provider.url_of(TRIAL), autocommit=True) as trial:
            # The trial database's own tables: a migration may have run since the copy.
            copying.delete_rows(trial, self.reflect(self.provider.url_of(TRIAL)), tenant_id)
        with self.provider.management() as session:
            tenant = session.get(Tenant, tenant_id)
            assert tenant is not None
            session.execute(update(Promotion).where(Promotion.id == self.id).values(
                step="purged", percent=100, status="completed", finished_at=utcnow(),
                updated_at=utcnow(), error=None))
            outbox.record(session, TenantPromotedV1(
                promotion_id=self.id, tenant_id=tenant_id, tenant_name=tenant.name,
                rows=promotion.rows_total, requested_by=promotion.requested_by),
                tenant_id=tenant_id, correlation_id=None)
            emitted = outbox.take_pending(session)
            session.commit()
        self.report(self.progress())
        return emitted

    def clean_up(self, tenant_id: uuid.UUID, reason: str) -> None:
        """Leave the tenant on the trial database as if the promotion never started."""
        promotion = self.load()
        if STEPS.index(promotion.step) >= STEPS.index("switched"):
            raise RuntimeError("a switched promotion is finished forward, never cleaned up")
        if promotion.server and promotion.database:
            try:
                url = database_on(self.provider.server_url(promotion.server), promotion.database)
                self.provider.forget(url)
                migrate.drop_database(url)
            except (psycopg.Error, LookupError):
                log.warning("could not drop %s@%s", promotion.database, promotion.server, exc_info=True)
        with copying.connect(self.provider.url_of(TRIAL), autocommit=True) as trial:
            trial.execute("DELETE FROM tenant_fences WHERE tenant_id = %s", (tenant_id,))
        with self.provider.management() as session:
            session.execute(update(Tenant).where(Tenant.id == tenant_id, Tenant.status == "promoting")
                            .values(status="trial"))
            session.execute(update(Promotion).where(Promotion.id == self.id).values(
                status="failed", error=reason[:2000], finished_at=utcnow(), updated_at=utcnow()))
            session.commit()
        self.provider.routing_changed(tenant_id)
        self.report(self.progress())

