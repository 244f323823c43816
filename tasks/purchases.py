"""Tasks of the purchases context (queue ``purchases``)."""
from __future__ import annotations

from domain.messaging.contracts.purchases import ChargePurchaseV1, RefundPurchaseV1
from domain.messaging.handling import HandlerContext
from domain.purchases import handlers
from workers.base import domain_task


@domain_task(contract=ChargePurchaseV1)
def charge_purchase(ctx: HandlerContext, msg: ChargePurchaseV1) -> None:
    """Charge a recorded purchase through the payment gateway."""
    handlers.charge_purchase(ctx, msg)


@domain_task(contract=RefundPurchaseV1)
def refund_purchase(ctx: HandlerContext, msg: RefundPurchaseV1) -> None:
    """Refund a purchase through the payment gateway."""
    handlers.refund_purchase(ctx, msg)
