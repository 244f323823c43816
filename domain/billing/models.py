"""Tables of the billing context (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column


class LedgerEntry(ManagementBase):
    """One money movement of a tenant: a charge (positive) or a refund (negative).

    At most one entry per (purchase, kind), so a repeated event cannot book twice.
    """

    __tablename__ = "billing_ledger_entries"
    __table_args__ = (
        UniqueConstraint("purchase_id", "kind", name="uq_billing_ledger_entries_purchase_kind"),
        CheckConstraint("kind IN ('charge', 'refund')", name="kind"),
        CheckConstraint("(kind = 'charge') = (amount_minor >= 0)", name="sign_follows_kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    purchase_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    kind: Mapped[str] = mapped_column(String(10))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    product_code: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(300))
    # The gateway's id of the charge or refund.
    reference: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = created_at_column()
