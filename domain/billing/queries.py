"""Read side of the billing context: a tenant's ledger and balance."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain.billing.models import LedgerEntry


@dataclass(frozen=True)
class EntryView:
    """A ledger entry."""

    id: uuid.UUID
    purchase_id: uuid.UUID
    kind: str
    amount_minor: int
    currency: str
    product_code: str
    description: str
    reference: str
    created_at: datetime


@dataclass(frozen=True)
class Ledger:
    """A tenant's entries (oldest first) and its balance per currency (charges less refunds)."""

    tenant_id: uuid.UUID
    entries: list[EntryView]
    balances: dict[str, int]


def ledger_of(session: Session, tenant_id: uuid.UUID, limit: int = 500) -> Ledger:
    """The tenant's latest ``limit`` entries and its balance over all of them."""
    rows = session.scalars(select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id)
                           .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id).limit(limit))
    entries = [EntryView(e.id, e.purchase_id, e.kind, e.amount_minor, e.currency, e.product_code,
                         e.description, e.reference, e.created_at) for e in rows]
    balances = session.execute(select(LedgerEntry.currency, func.sum(LedgerEntry.amount_minor))
                               .where(LedgerEntry.tenant_id == tenant_id)
                               .group_by(LedgerEntry.currency).order_by(LedgerEntry.currency))
    return Ledger(tenant_id, entries[::-1], {currency: int(total) for currency, total in balances})
