"""Use cases of the purchases context: record a purchase request, ask for a refund.

A purchase request is idempotent per tenant and ``Idempotency-Key``: the first request
records the purchase (``pending``) and its ``ChargePurchaseV1`` in one transaction; a
repeat with the same key and the same request answers with that purchase and writes
nothing; the same key with another request is refused. Two concurrent first requests
meet on the unique index (tenant, key): the second waits for the first, then reads it.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from domain.db.base import utcnow
from domain.errors import Conflict
from domain.messaging import outbox
from domain.messaging.contracts.purchases import ChargePurchaseV1, RefundPurchaseV1
from domain.purchases.catalogue import product_row
from domain.purchases.errors import (
    IDEMPOTENCY_KEY,
    CurrencyMismatch,
    GatewayDown,
    IdempotencyKeyReused,
    InvalidCardNumber,
    NotRefundable,
    PriceMismatch,
    ProductRetired,
    PurchaseNotFound,
    UnknownProduct,
)
from domain.purchases.gateway import (
    GatewayUnavailable,
    InvalidCard,
    PaymentGateway,
    PaymentMethod,
    normalise_card_number,
)
from domain.purchases.models import Product, Purchase
from domain.purchases.money import format_amount


@dataclass(frozen=True)
class PurchaseRequest:
    """What a buyer asks for: a product at the price they were shown, paid with a card."""

    product_code: str
    amount_minor: int
    currency: str
    card_number: str


@dataclass(frozen=True)
class Recorded:
    """The purchase a request stands for; ``replayed`` when an earlier request recorded it."""

    purchase_id: uuid.UUID
    replayed: bool


def request_hash(tenant_id: uuid.UUID, request: PurchaseRequest, card_fingerprint: str) -> str:
    """SHA-256 of the canonical request: what a repeat with the same key must match.

    The card enters as the gateway's fingerprint (stable per number), never as the number.
    """
    canonical = json.dumps({"tenant_id": str(tenant_id), "product_code": request.product_code,
                            "amount_minor": request.amount_minor, "currency": request.currency,
                            "card": card_fingerprint}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _by_key(session: Session, tenant_id: uuid.UUID, key: str) -> Purchase | None:
    return session.scalar(select(Purchase).where(Purchase.tenant_id == tenant_id,
                                                 Purchase.idempotency_key == key))


def _offered(session: Session, request: PurchaseRequest) -> Product:
    """The product, if it can be bought at the price the buyer was shown."""
    product = product_row(session, request.product_code)
    if product is None:
        raise UnknownProduct()
    if not product.active:
        raise ProductRetired()
    if request.currency != product.currency:
        raise CurrencyMismatch(product.currency)
    if request.amount_minor != product.price_minor:
        raise PriceMismatch(format_amount(product.price_minor, product.currency))
    return product


def _tokenize(gateway: PaymentGateway, tenant_id: uuid.UUID,
              request: PurchaseRequest) -> tuple[PaymentMethod, str]:
    """The card's payment method at the gateway, and the request's hash."""
    try:
        method = gateway.tokenize(normalise_card_number(request.card_number))
    except InvalidCard as exc:
        raise InvalidCardNumber(exc.reason) from None
    except GatewayUnavailable:
        raise GatewayDown() from None
    return method, request_hash(tenant_id, request, method.fingerprint)


def _same_request(purchase: Purchase, digest: str) -> Recorded:
    if purchase.request_hash != digest:
        raise IdempotencyKeyReused()
    return Recorded(purchase.id, replayed=True)


def request_purchase(session: Session, gateway: PaymentGateway, request: PurchaseRequest, *,
                     tenant_id: uuid.UUID, buyer_user_id: uuid.UUID, idempotency_key: str,
                     correlation_id: str | None) -> Recorded:
    """Record a purchase (pending) and its charge command, once per idempotency key.

    Everything is checked before anything is written; the card is tokenised at the
    gateway last, and only its token and last four digits are kept.
    """
    existing = _by_key(session, tenant_id, idempotency_key)
    if existing is not None:
        return _same_request(existing, _tokenize(gateway, tenant_id, request)[1])
    product = _offered(session, request)
    method, digest = _tokenize(gateway, tenant_id, request)
    purchase_id = uuid.uuid4()
    inserted = session.scalar(insert(Purchase).values(
        id=purchase_id, tenant_id=tenant_id, buyer_user_id=buyer_user_id, product_id=product.id,
        product_code=product.code, product_name=product.name, product_kind=product.kind,
        plan=product.plan, amount_minor=product.price_minor, currency=product.currency,
        idempotency_key=idempotency_key, request_hash=digest, payment_token=method.token,
        card_last4=method.last4, status="pending",
    ).on_conflict_do_nothing(constraint="uq_purchases_tenant_idempotency_key").returning(Purchase.id))
    if inserted is None:  # a concurrent request with this key committed first: answer with it
        winner = _by_key(session, tenant_id, idempotency_key)
        if winner is None:
            raise Conflict("a request with this key is still in progress; try again", IDEMPOTENCY_KEY)
        return _same_request(winner, digest)
    outbox.record(session, ChargePurchaseV1(purchase_id=purchase_id, tenant_id=tenant_id),
                  tenant_id=tenant_id, correlation_id=correlation_id)
    return Recorded(purchase_id, replayed=False)


def request_refund(session: Session, purchase_id: uuid.UUID, *, reason: str,
                   requested_by: uuid.UUID | None, correlation_id: str | None) -> None:
    """Record an operator's refund request and its refund command (completed purchases only)."""
    purchase = session.get(Purchase, purchase_id, with_for_update=True)
    if purchase is None:
        raise PurchaseNotFound()
    if purchase.status != "completed":
        raise NotRefundable(purchase.status)
    purchase.status, purchase.refund_reason = "refund_requested", reason
    purchase.refund_requested_by, purchase.refund_requested_at = requested_by, utcnow()
    outbox.record(session, RefundPurchaseV1(purchase_id=purchase.id, tenant_id=purchase.tenant_id,
                                            reason=reason),
                  tenant_id=purchase.tenant_id, correlation_id=correlation_id)
