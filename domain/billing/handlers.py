"""Message handlers of the billing context: book each purchase event once."""
from __future__ import annotations

import uuid

from sqlalchemy.dialects.postgresql import insert

from domain.billing.models import LedgerEntry
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseRefundedV1
from domain.messaging.handling import HandlerContext
from domain.purchases import queries as purchases


def _book(ctx: HandlerContext, *, tenant_id: uuid.UUID, purchase_id: uuid.UUID, kind: str,
          amount_minor: int, currency: str, product_code: str, description: str, reference: str) -> None:
    # Only the tenant's own purchase is booked in its ledger: another tenant's would take that
    # purchase's (purchase, kind), which is unique, and its own booking would then be dropped.
    if not purchases.is_purchase_of(ctx.session, tenant_id, purchase_id):
        return
    # The unique (purchase, kind) makes a second booking a no-op even past the inbox.
    ctx.session.execute(insert(LedgerEntry).values(
        id=uuid.uuid4(), tenant_id=tenant_id, purchase_id=purchase_id, kind=kind,
        amount_minor=amount_minor, currency=currency, product_code=product_code,
        description=description[:300], reference=reference,
    ).on_conflict_do_nothing(constraint="uq_billing_ledger_entries_purchase_kind"))


def record_charge(ctx: HandlerContext, msg: PurchaseCompletedV1) -> None:
    """Book the charge of a completed purchase."""
    _book(ctx, tenant_id=msg.tenant_id, purchase_id=msg.purchase_id, kind="charge",
          amount_minor=msg.amount_minor, currency=msg.currency, product_code=msg.product_code,
          description=msg.product_name, reference=msg.charge_id)


def record_refund(ctx: HandlerContext, msg: PurchaseRefundedV1) -> None:
    """Book the refund of a purchase (a negative amount); a free purchase's books nothing.

    A refund entry is negative (the table's sign_follows_kind): a refund of nothing moved no
    money and has no entry. The purchase's zero charge stays its record; the balance is the same.
    """
    if msg.amount_minor == 0:
        return
    _book(ctx, tenant_id=msg.tenant_id, purchase_id=msg.purchase_id, kind="refund",
          amount_minor=-msg.amount_minor, currency=msg.currency, product_code=msg.product_code,
          description=f"Refund: {msg.product_name}", reference=msg.refund_id)
