"""Tasks of the billing context (queue ``billing``)."""
from __future__ import annotations

from domain.billing import handlers
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseRefundedV1
from domain.messaging.handling import HandlerContext
from workers.base import domain_task


@domain_task(contract=PurchaseCompletedV1)
def record_charge(ctx: HandlerContext, msg: PurchaseCompletedV1) -> None:
    """Book a completed purchase's charge in the tenant's ledger."""
    handlers.record_charge(ctx, msg)


@domain_task(contract=PurchaseRefundedV1)
def record_refund(ctx: HandlerContext, msg: PurchaseRefundedV1) -> None:
    """Book a purchase's refund in the tenant's ledger."""
    handlers.record_refund(ctx, msg)
