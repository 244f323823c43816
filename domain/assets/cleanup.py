"""Beat's clean-up of the asset storage (DESIGN §6: orphan uploads).

Each run, in every tenant database:

1. uploads never confirmed (``awaiting_upload`` for longer than the upload link lives
   plus ``ASSET_UNCONFIRMED_SECONDS``) lose their file and end ``deleted``;
2. deleted and rejected assets whose files remain lose them (original, renditions);

and on the storage, files under ``tenants/<tenant>/assets/<asset>/`` older than
``ASSET_UNCONFIRMED_SECONDS`` whose asset has no row (a streamed upload whose request died
before its commit), or an ``upload`` file of an asset ready or rejected (the file as
received, which processing copies and keeps for a run after a crash; or a second upload
through the link of an asset already processed), are deleted. A confirmed asset not yet
processed keeps its upload however long it waits.

Safe to run twice at once: a run holds a management-database advisory lock for its
length and a second run skips; rows are claimed ``FOR UPDATE SKIP LOCKED``; deleting a
file that is gone is harmless.
"""
from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ARRAY, Uuid, any_, bindparam, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from domain.assets import keys, processing
from domain.assets.models import WORKING, Asset
from domain.assets.storage import Storage, StoredObject
from domain.db.base import utcnow
from domain.db.provider import DataProvider
from domain.errors import NotFound

log = logging.getLogger(__name__)
# Statuses in which an asset's ``upload`` file is (or will be) what processing reads.
WAITING_FOR_UPLOAD = ("awaiting_upload", *WORKING)
LOCK_KEY = int.from_bytes(hashlib.sha256(b"allotment.assets.cleanup").digest()[:8], "big", signed=True)
BATCH = 500


@dataclass
class Report:
    """What one run removed."""

    unconfirmed: int = 0
    purged: int = 0
    orphan_files: int = 0
    skipped: bool = False
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """A JSON-safe summary (the task's result)."""
        return {"unconfirmed": self.unconfirmed, "purged": self.purged, "orphan_files": self.orphan_files,
                "skipped": self.skipped, "failed": self.failed}


def clean_up(provider: DataProvider, storage: Storage, *, unconfirmed_after: timedelta,
             orphan_after: timedelta) -> Report:
    """One clean-up run (skipped if another holds the lock)."""
    report = Report()
    with provider.management() as guard:
        if not guard.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}):
            report.skipped = True
            return report
        for db_key in provider.tenant_databases():
            try:
                _clean_database(provider, db_key, storage, unconfirmed_after, report)
            except (SQLAlchemyError, LookupError):
                log.exception("asset clean-up could not clean %s", db_key)
                report.failed.append(db_key)
        _remove_orphans(provider, storage, utcnow() - orphan_after, report)
        guard.rollback()
    return report


def _clean_database(provider: DataProvider, db_key: str, storage: Storage, unconfirmed_after: timedelta,
                    report: Report) -> None:
    cutoff = utcnow() - unconfirmed_after
    while True:
        with provider.unscoped(db_key) as session:
            stale = _claim(session, (Asset.status == "awaiting_upload") & (Asset.created_at < cutoff))
            for asset in stale:
                processing.remove_files(storage, asset.tenant_id, asset.id)
                asset.status, asset.reason = "deleted", "the upload was never confirmed"
                asset.deleted_at = asset.purged_at = utcnow()
            doomed = _claim(session, Asset.status.in_(("deleted", "rejected")) & Asset.purged_at.is_(None))
            for asset in doomed:
                processing.remove_files(storage, asset.tenant_id, asset.id)
                asset.purged_at = utcnow()
            session.commit()
        report.unconfirmed += len(stale)
        report.purged += len(doomed)
        if len(stale) < BATCH and len(doomed) < BATCH:
            return


def _claim(session: Session, condition: object) -> list[Asset]:
    return list(session.scalars(select(Asset).where(condition)  # type: ignore[arg-type]
                                .order_by(Asset.created_at).limit(BATCH).with_for_update(skip_locked=True)))


def _remove_orphans(provider: DataProvider, storage: Storage, older_than: datetime, report: Report) -> None:
    """Delete old files of assets that have no row, and uploads no asset waits for."""
    candidates: dict[uuid.UUID, list[tuple[keys.AssetKey, StoredObject]]] = defaultdict(list)
    for stored in storage.listing(keys.ROOT):
        parsed = keys.parse(stored.key)
        if parsed is not None and stored.modified_at < older_than:
            candidates[parsed.tenant_id].append((parsed, stored))
    for tenant_id, files in candidates.items():
        try:
            statuses = _statuses(provider, tenant_id, {parsed.asset_id for parsed, _ in files})
        except NotFound:
            continue  # a tenant we cannot route: leave its files to its offboarding
        except (SQLAlchemyError, LookupError):
            log.warning("asset clean-up could not check tenant %s", tenant_id, exc_info=True)
            continue
        for parsed, stored in files:
            status = statuses.get(parsed.asset_id)
            gone = status is None or status in ("deleted", "rejected")  # written after its purge
            # An upload is what processing reads until the asset is ready or rejected: while
            # the asset awaits it or is confirmed and not yet processed (its command parked
            # behind the tenant's others, the pool backlogged or down), it stays.
            if gone or (parsed.name == "upload" and status not in WAITING_FOR_UPLOAD):
                storage.delete(stored.key)
                report.orphan_files += 1


def _statuses(provider: DataProvider, tenant_id: uuid.UUID,
              asset_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    # One array parameter: an IN list binds each id, and PostgreSQL takes at most 65,535
    # parameters a statement (a tenant with more assets was skipped by every run).
    ids = bindparam("ids", list(asset_ids), type_=ARRAY(Uuid()))
    with provider.tenant(tenant_id) as session:
        rows = session.execute(select(Asset.id, Asset.status).where(Asset.id == any_(ids))).all()
    return {row[0]: row[1] for row in rows}
