"""Migrating tenant databases: one database per call, outcomes recorded (DESIGN §3).

Migrate-all is a Celery group of ``migrate_database`` calls, one per tenant database,
released at most ``MIGRATION_CONCURRENCY`` at a time (``workers.publisher.run_group``)
while the caller holds ``exclusive_run`` so that two runs never add up. Every call records
a ``TenantMigration`` row: its ``created_at`` is when that database's migration finished
and ``duration_ms`` how long it took, so each row is the interval the database was being
migrated.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from domain.db import migrate
from domain.db.provider import DataProvider
from domain.errors import Conflict
from domain.tenancy.models import TenantMigration

log = logging.getLogger(__name__)
# Revisions are read over this many connections at once by the drift check.
DRIFT_READERS = 8
# Session advisory lock on the management database held by a migrate-all run ("migrall").
RUN_LOCK_KEY = 0x6D696772616C6C


@dataclass(frozen=True)
class MigrationOutcome:
    """What happened to one database in a migrate-all run."""

    database: str
    status: str  # upgraded | skipped | failed
    revision_before: str | None
    revision_after: str | None
    duration_ms: int
    started_at: datetime
    finished_at: datetime
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (a Celery result)."""
        data = asdict(self)
        data["started_at"], data["finished_at"] = self.started_at.isoformat(), self.finished_at.isoformat()
        return data


@dataclass(frozen=True)
class MigrationRecord:
    """The latest recorded outcome of one database (operators' listing)."""

    database: str
    status: str
    revision_before: str | None
    revision_after: str | None
    duration_ms: int
    finished_at: datetime
    error: str | None


def migrate_database(provider: DataProvider, db_key: str) -> MigrationOutcome:
    """Upgrade one tenant database to head; a failure is recorded, not raised.

    A database already at head costs one connection and one query (``migrate.upgrade``)
    plus the recorded row.
    """
    started_at, started = datetime.now(UTC), time.monotonic()
    url = None
    try:
        url = provider.url_of(db_key)
        result = migrate.upgrade("tenant", url, provider.settings.tenant_db_role)
        status = "skipped" if result.skipped else "upgraded"
        before, after, error = result.before, result.after, None
    except Exception as exc:  # one failing database must not stop the others: record it
        log.exception("migrating %s failed", db_key)
        # The failed revision rolled back (transactional DDL): record where the database stands.
        before = after = revision_of(url) if url else None
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    duration_ms = round((time.monotonic() - started) * 1000)
    outcome = MigrationOutcome(db_key, status, before, after, duration_ms, started_at,
                               started_at + timedelta(milliseconds=duration_ms), error)
    with provider.management() as session:
        session.add(TenantMigration(
            database=db_key, revision_before=outcome.revision_before,
            revision_after=outcome.revision_after, status=outcome.status, error=outcome.error,
            duration_ms=outcome.duration_ms, created_at=outcome.finished_at))
        session.commit()
    return outcome


@contextmanager
def exclusive_run(provider: DataProvider) -> Iterator[None]:
    """Hold the migrate-all lock for a run; Conflict if another run holds it.

    A session-level advisory lock on the management database: it goes with the holder's
    connection, so a run that dies releases it. With it the concurrency bound of one run
    is the bound of the whole pool.
    """
    with provider.engine(provider.settings.database_url).connect() as conn:
        if not conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": RUN_LOCK_KEY}):
            raise Conflict("another migrate-all run is in progress", field="migrate-all")
        conn.commit()  # the lock outlives the transaction; an idle transaction would hold back vacuum
        try:
            yield
        finally:
            # A connection lost meanwhile took the lock with it; that must not hide the run's error.
            with suppress(SQLAlchemyError):
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": RUN_LOCK_KEY})
                conn.commit()


def drifted_databases(provider: DataProvider) -> list[str]:
    """Tenant databases not at the head revision (unreachable ones included), logged (beat)."""
    target = migrate.head("tenant")
    drifted = _drifted(provider, provider.tenant_databases(), target)
    if drifted:
        log.warning("%d tenant databases not at head %s: %s", len(drifted), target, drifted)
    return drifted


@dataclass(frozen=True)
class MigrationStatus:
    """Where the tenant databases stand: the head, each one's latest outcome, the drifted."""

    head: str | None
    latest: list[MigrationRecord]
    drifted: list[str]


def migration_status(provider: DataProvider) -> MigrationStatus:
    """The latest recorded outcome of every tenant database and, read live, those not at head."""
    keys = provider.tenant_databases()
    target = migrate.head("tenant")
    with provider.management() as session:
        rows = session.scalars(
            select(TenantMigration).where(TenantMigration.database.in_(keys))
            .ext(distinct_on(TenantMigration.database))
            .order_by(TenantMigration.database, TenantMigration.created_at.desc())).all()
        latest = [MigrationRecord(r.database, r.status, r.revision_before, r.revision_after,
                                  r.duration_ms, r.created_at, r.error) for r in rows]
    return MigrationStatus(target, latest, _drifted(provider, keys, target))


def _drifted(provider: DataProvider, keys: list[str], target: str | None) -> list[str]:
    # Each read is one connection and one query; several at once keep a long list short.
    with ThreadPoolExecutor(max_workers=DRIFT_READERS) as readers:
        revisions = list(readers.map(lambda key: _revision_of_key(provider, key), keys))
    return [key for key, revision in zip(keys, revisions, strict=True) if revision != target]


def _revision_of_key(provider: DataProvider, db_key: str) -> str | None:
    try:
        url = provider.url_of(db_key)
    except LookupError:  # its placement server is no longer configured: not at head either
        log.warning("the server of %s is not configured", db_key)
        return None
    return revision_of(url)


def revision_of(url: str) -> str | None:
    """The database's revision; None when it was never migrated or cannot be reached."""
    try:
        return migrate.current_revision(url)
    except Exception:  # an unreachable database is reported as not at head
        log.warning("cannot read the revision of %s", make_url(url).render_as_string(hide_password=True),
                    exc_info=True)
        return None
