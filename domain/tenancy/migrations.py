"""Migrating tenant databases: one database per call, outcomes recorded (DESIGN §3)."""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select

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
    try:
        result = migrate.upgrade("tenant", url, role)
        outcome = MigrationOutcome(db_key, "skipped" if result.skipped else "upgraded",
                                   result.before, result.after, result.duration_ms)
    except Exception as exc:
        log.exception("migrating %s failed", db_key)
        outcome = MigrationOutcome(db_key, "failed", None, None, 0, f"{type(exc).__name__}: {exc}")
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
        try:
            current = migrate.current_revision(provider.url_of(db_key))
        except Exception:  # noqa: BLE001 - an unreachable database is drift too
            current = None
        if current != target:
            drifted.append(db_key)
    if drifted:
        log.warning("tenant databases not at head %s: %s", target, drifted)
    return drifted


def last_outcomes(provider: DataProvider, limit: int = 100) -> list[MigrationOutcome]:
    """The most recent recorded outcomes."""
    with provider.management() as session:
        rows = session.scalars(select(TenantMigration)
                               .order_by(TenantMigration.created_at.desc()).limit(limit))
        return [MigrationOutcome(r.database, r.status, r.revision_before, r.revision_after,
                                 r.duration_ms, r.error) for r in rows]
