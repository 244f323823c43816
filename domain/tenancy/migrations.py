"""Migrating tenant databases: one database per call, outcomes recorded (DESIGN §3)."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.engine import make_url

from domain.db import migrate
from domain.db.provider import DataProvider
from domain.tenancy.models import TenantMigration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationOutcome:
    """What happened to one database in a migrate-all run."""

    database: str
    status: str  # upgraded | skipped | failed
    revision_before: str | None
    revision_after: str | None
    duration_ms: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form (a Celery result)."""
        return asdict(self)


def migrate_database(provider: DataProvider, db_key: str) -> MigrationOutcome:
    """Upgrade one tenant database to head; a failure is recorded, not raised."""
    url = provider.url_of(db_key)
    role = provider.settings.tenant_db_role
    started = time.monotonic()
    try:
        result = migrate.upgrade("tenant", url, role)
        outcome = MigrationOutcome(db_key, "skipped" if result.skipped else "upgraded",
                                   result.before, result.after, result.duration_ms)
    except Exception as exc:  # one failing database must not stop the others: record it
        log.exception("migrating %s failed", db_key)
        # The failed revision rolled back (transactional DDL): record where the database stands.
        revision = revision_of(url)
        outcome = MigrationOutcome(db_key, "failed", revision, revision,
                                   int((time.monotonic() - started) * 1000),
                                   f"{type(exc).__name__}: {exc}")
    with provider.management() as session:
        session.add(TenantMigration(
            database=db_key, revision_before=outcome.revision_before,
            revision_after=outcome.revision_after, status=outcome.status,
            error=outcome.error, duration_ms=outcome.duration_ms))
        session.commit()
    return outcome


def drifted_databases(provider: DataProvider) -> list[str]:
    """Tenant databases not at the head revision."""
    target = migrate.head("tenant")
    drifted = []
    for db_key in provider.tenant_databases():
        if revision_of(provider.url_of(db_key)) != target:
            drifted.append(db_key)
    if drifted:
        log.warning("tenant databases not at head %s: %s", target, drifted)
    return drifted


def revision_of(url: str) -> str | None:
    """The database's revision; None when it was never migrated or cannot be reached."""
    try:
        return migrate.current_revision(url)
    except Exception:  # an unreachable database is reported as not at head
        log.warning("cannot read the revision of %s", make_url(url).render_as_string(hide_password=True),
                    exc_info=True)
        return None
