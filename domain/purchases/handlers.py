"""Message handlers of the purchases context: charge a purchase, refund it.

Both call the payment gateway, outside the handler's transaction, with an idempotency key
derived from the purchase: a redelivery (the worker killed after the gateway answered and
before its commit, the relay re-sending) asks again with the same key and gets the same
charge or refund, never a second one.
"""
from __future__ import annotations

import logging
from typing import Literal, cast

from domain.db.base import utcnow
from domain.errors import Transient
from domain.messaging.contracts.purchases import (
    ChargePurchaseV1,
    PurchaseCompletedV1,
    PurchaseFailedV1,
    PurchaseRefundedV1,
    RefundPurchaseV1,
)
from domain.messaging.handling import HandlerContext
from domain.purchases.gateway import GatewayUnavailable, OutcomeUnknown, PaymentGateway, PaymentRefused
from domain.purchases.models import Purchase

UNAVAILABLE = "payment gateway unavailable"
REFUND_REFUSED = "the refund was refused"
ProductKind = Literal["plan", "addon"]

log = logging.getLogger(__name__)


def charge_key(purchase: Purchase) -> str:
    """The gateway idempotency key of a purchase's charge: the purchase id."""
    return str(purchase.id)


def refund_key(purchase: Purchase) -> str:
    """The gateway idempotency key of a purchase's refund request: the same for every
    delivery of one request. A request made after the gateway refused an earlier one (an
    operator asking again once it is settled there) gets a key of its own, the time it was
    asked: under the first key the gateway would answer with its first answer, the refusal."""
    if purchase.failure_reason and purchase.failure_reason.startswith(REFUND_REFUSED):
        asked = purchase.refund_requested_at.isoformat() if purchase.refund_requested_at else "again"
        return f"{purchase.id}:refund:{asked}"
    return f"{purchase.id}:refund"


def charge_purchase(ctx: HandlerContext, msg: ChargePurchaseV1) -> None:
    """Charge a pending purchase; completed or failed (with the reason) is announced.

    A gateway that answers it cannot take the charge is retried (Transient) until the last
    attempt, which fails the purchase: the buyer is told instead of waiting forever (answering
    for this key, the gateway would have replayed a charge an earlier attempt made). No answer
    (``OutcomeUnknown``: not reached, or lost on the way, so a charge may have been made)
    never fails the purchase: it stays pending and is asked again with the same key, by the
    retries and then by the relay's re-sends, until the gateway answers (or, its message
    dead, operators step in).
    """
    purchase = ctx.session.get(Purchase, msg.purchase_id, with_for_update=True)
    if purchase is None or purchase.tenant_id != msg.tenant_id or purchase.status != "pending":
        return
    gateway: PaymentGateway = ctx.ports["gateway"]
    try:
        charge = gateway.charge(purchase.payment_token, purchase.amount_minor, purchase.currency,
                                idempotency_key=charge_key(purchase))
    except PaymentRefused as exc:
        _fail(ctx, purchase, exc.reason)
        return
    except GatewayUnavailable as exc:
        if not ctx.last_attempt or isinstance(exc, OutcomeUnknown):
            raise Transient(f"{UNAVAILABLE}: {exc.reason}") from exc
        _fail(ctx, purchase, UNAVAILABLE)
        return
    purchase.status, purchase.charge_id, purchase.completed_at = "completed", charge.id, utcnow()
    ctx.emit(PurchaseCompletedV1(
        purchase_id=purchase.id, tenant_id=purchase.tenant_id, buyer_user_id=purchase.buyer_user_id,
        product_code=purchase.product_code, product_name=purchase.product_name,
        product_kind=_kind(purchase), plan=purchase.plan,
        amount_minor=purchase.amount_minor, currency=purchase.currency, charge_id=charge.id,
    ), tenant_id=purchase.tenant_id)


def _kind(purchase: Purchase) -> ProductKind:
    return cast(ProductKind, purchase.product_kind)  # the products table allows no other kind


def _fail(ctx: HandlerContext, purchase: Purchase, reason: str) -> None:
    purchase.status, purchase.failure_reason, purchase.failed_at = "failed", reason, utcnow()
    ctx.emit(PurchaseFailedV1(purchase_id=purchase.id, tenant_id=purchase.tenant_id,
                              buyer_user_id=purchase.buyer_user_id, product_name=purchase.product_name,
                              reason=reason), tenant_id=purchase.tenant_id)


def refund_purchase(ctx: HandlerContext, msg: RefundPurchaseV1) -> None:
    """Refund a purchase an operator asked to refund; announce it once refunded.

    A gateway that cannot be reached is retried, then left to the relay (the purchase
    stays ``refund_requested`` and operators see the delivery's error): a refund is owed,
    so it is never given up on silently. A gateway that refuses it (``PaymentRefused``: the
    charge was refunded or disputed there already) would refuse every re-send: the purchase
    goes back to ``completed``, the charge standing, with the refusal as its
    ``failure_reason`` for operators, who may ask again once it is settled at the gateway.
    """
    purchase = ctx.session.get(Purchase, msg.purchase_id, with_for_update=True)
    if (purchase is None or purchase.tenant_id != msg.tenant_id or purchase.status != "refund_requested"
            or purchase.charge_id is None):
        return
    gateway: PaymentGateway = ctx.ports["gateway"]
    try:
        refund = gateway.refund(purchase.charge_id, purchase.amount_minor,
                                idempotency_key=refund_key(purchase))
    except PaymentRefused as exc:
        log.warning("the gateway refused the refund of purchase %s: %s", purchase.id, exc.reason)
        purchase.status, purchase.failure_reason = "completed", f"{REFUND_REFUSED}: {exc.reason}"
        return
    except GatewayUnavailable as exc:
        raise Transient(f"{UNAVAILABLE}: {exc.reason}") from exc
    purchase.status, purchase.refund_id, purchase.refunded_at = "refunded", refund.id, utcnow()
    purchase.failure_reason = None  # an earlier refusal of its refund, if any
    ctx.emit(PurchaseRefundedV1(
        purchase_id=purchase.id, tenant_id=purchase.tenant_id, buyer_user_id=purchase.buyer_user_id,
        product_code=purchase.product_code, product_name=purchase.product_name,
        product_kind=_kind(purchase),
        amount_minor=purchase.amount_minor, currency=purchase.currency, refund_id=refund.id,
    ), tenant_id=purchase.tenant_id)
