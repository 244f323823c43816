"""One delivery of one message to one handler, for sweeps of the message handlers.

``record_delivery`` writes the outbox row of a message's delivery to one handler, recorded
for the tenant the test chooses, in the database that handler writes (so the delivery is
completed in the handler's own transaction); given ``payload``, the row carries that payload
instead: a forged or tampered row, which ``outbox.record`` itself would refuse. ``deliver``
sends it as the publisher does and waits until the worker completed it or recorded why it
failed. ``holdings`` is what a tenant holds, its inbox rows included.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

from celery import Celery
from sqlalchemy import insert, select, text

from domain.db.provider import MANAGEMENT, DataProvider
from domain.messaging import bus, outbox
from domain.messaging.contracts import Contract
from domain.messaging.outbox import Envelope
from domain.messaging.tables import outbox as outbox_table
from tests.support import refs, tenants
from tests.support.tenants import TenantWithMembers
from tests.support.waiting import wait_for
from workers.publisher import publish


def target_database(provider: DataProvider, handler: str, tenant_id: uuid.UUID | None) -> str:
    """The database ``handler`` writes for a delivery recorded for ``tenant_id`` (None: a
    message of no tenant, which only a management handler takes)."""
    if bus.target_of(handler) == "management":
        return MANAGEMENT
    assert tenant_id is not None, f"{handler} writes a tenant's database"
    return provider.route(tenant_id).db_key


def record_delivery(provider: DataProvider, message: Contract, handler: str, *, tenant_id: uuid.UUID | None,
                    payload: dict[str, Any] | None = None) -> Envelope:
    """Commit the outbox row of ``message``'s delivery to ``handler`` for ``tenant_id`` (None:
    for no tenant; carrying ``payload`` instead of the message's, if given); its envelope, not sent."""
    origin = target_database(provider, handler, tenant_id)
    with provider.unscoped(origin) as session:
        # Prepared for no tenant, so that a row naming another one in its payload can be made.
        rows, envelopes = outbox.prepare(session, message, tenant_id=None, correlation_id=refs.slug("iso"))
        ((row, envelope),) = [(r, e) for r, e in zip(rows, envelopes, strict=True) if r["handler"] == handler]
        row = {**row, "tenant_id": tenant_id, "payload": payload if payload is not None else row["payload"]}
        session.execute(insert(outbox_table), [row])
        session.commit()
    return dataclasses.replace(envelope, tenant_id=str(tenant_id) if tenant_id else None,
                               payload=row["payload"])


def outcome(provider: DataProvider, envelope: Envelope) -> Mapping[str, Any] | None:
    """The delivery's outbox row once it completed or a failure was recorded on it, else None."""
    with provider.unscoped(envelope.origin) as session:
        row = session.execute(select(outbox_table.c.completed_at, outbox_table.c.last_error)
                              .where(outbox_table.c.id == uuid.UUID(envelope.id))).mappings().one()
    return row if row["completed_at"] is not None or row["last_error"] is not None else None


def deliver(publisher: Celery, provider: DataProvider, envelope: Envelope,
            timeout: float = 60.0) -> Mapping[str, Any]:
    """Send the delivery to its handler's queue and wait until it completed or failed."""
    assert publish(publisher, [envelope]) == 1
    return wait_for(lambda: outcome(provider, envelope), timeout=timeout,
                    message=f"{envelope.handler} to end delivery {envelope.id}")


def holdings(provider: DataProvider, tenant: TenantWithMembers) -> dict[str, str]:
    """Everything of the tenant, table by table (``tenants.tenant_fingerprint`` with its members),
    and its inbox rows in the management database and its own."""
    prints = tenants.tenant_fingerprint(provider, tenant.id, user_ids=tenant.user_ids)
    for db_key in {MANAGEMENT, provider.route(tenant.id).db_key}:
        with provider.unscoped(db_key) as session:
            prints[f"{db_key}.inbox"] = session.scalar(
                text("SELECT " + tenants.digest_sql("inbox", "t.tenant_id = :tenant")), {"tenant": tenant.id})
    return prints


def emails(provider: DataProvider) -> dict[str, str]:
    """Every email recorded for sending, whoever's (count and checksum)."""
    return tenants.tables_fingerprint(provider, ["email_deliveries"])
