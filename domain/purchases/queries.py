"""Read side of the purchases context: the catalogue and purchases as pages and the API show them."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.purchases.errors import PurchaseNotFound
from domain.purchases.models import (
    STATUS_LABELS,  # noqa: F401 - public for pages: the models are private
    Product,
    Purchase,
)
from domain.purchases.money import format_amount

# States a purchase does not leave by itself (refund_requested goes on to refunded).
FINAL = frozenset({"completed", "failed", "refunded"})


@dataclass(frozen=True)
class ProductView:
    """A product of the catalogue."""

    id: uuid.UUID
    code: str
    name: str
    kind: str
    plan: str | None
    price_minor: int
    currency: str
    active: bool

    @property
    def price(self) -> str:
        """The price as people read it ("49.00 EUR")."""
        return format_amount(self.price_minor, self.currency)


@dataclass(frozen=True)
class PurchaseView:
    """A purchase and where it stands."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    buyer_user_id: uuid.UUID
    product_code: str
    product_name: str
    product_kind: str
    plan: str | None
    amount_minor: int
    currency: str
    card_last4: str
    status: str
    failure_reason: str | None
    refund_reason: str | None
    created_at: datetime
    completed_at: datetime | None
    failed_at: datetime | None
    refund_requested_at: datetime | None
    refunded_at: datetime | None

    @property
    def final(self) -> bool:
        """True once nothing more will happen to it unless someone asks (a refund)."""
        return self.status in FINAL

    @property
    def amount(self) -> str:
        """The amount as people read it."""
        return format_amount(self.amount_minor, self.currency)


def product_view(product: Product) -> ProductView:
    """The view of a product row."""
    return ProductView(product.id, product.code, product.name, product.kind, product.plan,
                       product.price_minor, product.currency, product.active)


def purchase_view(p: Purchase) -> PurchaseView:
    """The view of a purchase row."""
    return PurchaseView(p.id, p.tenant_id, p.buyer_user_id, p.product_code, p.product_name,
                        p.product_kind, p.plan, p.amount_minor, p.currency, p.card_last4, p.status,
                        p.failure_reason, p.refund_reason, p.created_at, p.completed_at, p.failed_at,
                        p.refund_requested_at, p.refunded_at)


def products(session: Session, *, include_retired: bool = False) -> list[ProductView]:
    """The catalogue (active products only, unless asked), plans first, then by price."""
    query = select(Product).order_by(Product.kind.desc(), Product.price_minor, Product.code)
    if not include_retired:
        query = query.where(Product.active.is_(True))
    return [product_view(p) for p in session.scalars(query)]


def purchase_of_tenant(session: Session, tenant_id: uuid.UUID, purchase_id: uuid.UUID) -> PurchaseView:
    """A purchase of ``tenant_id``; another tenant's is not found, like a missing one."""
    found = session.scalar(select(Purchase).where(Purchase.id == purchase_id,
                                                  Purchase.tenant_id == tenant_id))
    if found is None:
        raise PurchaseNotFound()
    return purchase_view(found)


def is_purchase_of(session: Session, tenant_id: uuid.UUID, purchase_id: uuid.UUID) -> bool:
    """True when the purchase is ``tenant_id``'s: a handler of a purchase event acts only on a
    purchase of the tenant its message is for."""
    return session.scalar(select(Purchase.id).where(Purchase.id == purchase_id,
                                                    Purchase.tenant_id == tenant_id)) is not None


def purchase(session: Session, purchase_id: uuid.UUID) -> PurchaseView:
    """Any tenant's purchase (platform operators)."""
    found = session.get(Purchase, purchase_id)
    if found is None:
        raise PurchaseNotFound()
    return purchase_view(found)


def purchases_of_tenant(session: Session, tenant_id: uuid.UUID, limit: int = 50) -> list[PurchaseView]:
    """A tenant's purchases, newest first."""
    rows = session.scalars(select(Purchase).where(Purchase.tenant_id == tenant_id)
                           .order_by(Purchase.created_at.desc(), Purchase.id).limit(limit))
    return [purchase_view(p) for p in rows]
