"""Tables of the purchases context (management database)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from domain.db.base import ManagementBase, created_at_column
from domain.translations.translator import N_


class Product(ManagementBase):
    """Something the platform sells: a plan (moves a tenant to ``plan``) or an add-on."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_minor >= 0", name="price_not_negative"),
        CheckConstraint("kind IN ('plan', 'addon')", name="kind"),
        CheckConstraint("(kind = 'plan') = (plan IS NOT NULL)", name="plan_of_plans_only"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))
    plan: Mapped[str | None] = mapped_column(String(40))
    price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# pending -> completed | failed; completed -> refund_requested -> refunded (or back to
# completed, with the reason, when the gateway refuses the refund).
STATUSES = ("pending", "completed", "failed", "refund_requested", "refunded")
# How pages name each status (translated when shown; a unit test holds it to STATUSES).
STATUS_LABELS: dict[str, str] = {
    "pending": N_("pending"), "completed": N_("completed"), "failed": N_("failed"),
    "refund_requested": N_("refund requested"), "refunded": N_("refunded"),
}


class Purchase(ManagementBase):
    """One purchase request and where it stands: the job row its status URL reads.

    ``status``: pending -> completed | failed; completed -> refund_requested -> refunded (or
    back to completed, the gateway's refusal as ``failure_reason``).
    What was bought is copied from the catalogue when it is recorded (a later price change
    does not touch it). The card is kept only as the gateway's token and its last four
    digits; ``request_hash`` is the SHA-256 of the canonical request, which a retry with the
    same ``Idempotency-Key`` must match.
    """

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_purchases_tenant_idempotency_key"),
        CheckConstraint("amount_minor >= 0", name="amount_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    buyer_user_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"), index=True)
    product_code: Mapped[str] = mapped_column(String(60))
    product_name: Mapped[str] = mapped_column(String(200))
    product_kind: Mapped[str] = mapped_column(String(10))
    plan: Mapped[str | None] = mapped_column(String(40))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    payment_token: Mapped[str] = mapped_column(String(100))
    card_last4: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    charge_id: Mapped[str | None] = mapped_column(String(100))
    refund_id: Mapped[str | None] = mapped_column(String(100))
    refund_reason: Mapped[str | None] = mapped_column(Text)
    refund_requested_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = created_at_column()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refund_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refunded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
