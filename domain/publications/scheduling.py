"""Beat's scheduled publishing (DESIGN §6): due publications go out within a beat interval,
exactly once however many beats run.

For each tenant database, one read finds the tenants with a scheduled publication whose
``publish_at`` has passed; then, on each such tenant's own session (tenant filter, RLS, the
write gate), one conditional ``UPDATE ... WHERE status = 'scheduled' RETURNING`` claims
them and records each one's ``PublishPublication`` command in the same transaction. A
second run at the same time blocks on the rows, then finds them no longer scheduled and
claims nothing.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from domain.db.provider import DataProvider
from domain.errors import DomainError
from domain.messaging import outbox
from domain.messaging.contracts.publications import PublishPublicationV1
from domain.messaging.outbox import Envelope
from domain.publications.models import Publication

log = logging.getLogger(__name__)


def publish_due(provider: DataProvider, *, now: datetime) -> list[Envelope]:
    """Claim every due scheduled publication of every tenant; the envelopes to publish."""
    envelopes: list[Envelope] = []
    for db_key in provider.tenant_databases():
        try:
            tenants = _tenants_with_due(provider, db_key, now)
        except (SQLAlchemyError, LookupError):
            log.exception("scheduled publishing could not read %s", db_key)
            continue
        for tenant_id in tenants:
            try:
                envelopes += claim_due(provider, tenant_id, now=now)
            except (SQLAlchemyError, DomainError):  # a tenant gone or moving: the next run tries again
                log.warning("scheduled publishing could not claim for tenant %s", tenant_id, exc_info=True)
    return envelopes


def _tenants_with_due(provider: DataProvider, db_key: str, now: datetime) -> list[uuid.UUID]:
    # Read only, across the database's tenants (the claim below runs on each tenant's session).
    with provider.unscoped(db_key) as session:
        return list(session.scalars(select(Publication.tenant_id).distinct().where(
            Publication.status == "scheduled", Publication.publish_at <= now)))


def claim_due(provider: DataProvider, tenant_id: uuid.UUID, *, now: datetime) -> list[Envelope]:
    """Claim the tenant's due scheduled publications and record their commands (one transaction)."""
    with provider.tenant(tenant_id) as db:
        claimed = list(db.scalars(
            update(Publication).where(Publication.status == "scheduled", Publication.publish_at <= now)
            .values(status="publishing", updated_at=now).returning(Publication.id)))
        for publication_id in claimed:
            outbox.record(db, PublishPublicationV1(publication_id=publication_id, tenant_id=tenant_id),
                          tenant_id=tenant_id, correlation_id=None)
        pending = outbox.take_pending(db)
        db.commit()
    return pending
