"""Tasks of the notifications context (queue ``notifications``)."""
from __future__ import annotations

from domain.messaging.contracts.iam import UserInvitedV1
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseFailedV1, PurchaseRefundedV1
from domain.messaging.contracts.tenancy import TenantPromotedV1, TenantProvisionedV1
from domain.messaging.handling import HandlerContext
from domain.notifications import handlers
from workers.base import domain_task


@domain_task(contract=TenantProvisionedV1)
def record_welcome_notice(ctx: HandlerContext, msg: TenantProvisionedV1) -> None:
    """Record the welcome notice of a new tenant's first admin."""
    handlers.record_welcome_notice(ctx, msg)


@domain_task(contract=UserInvitedV1)
def send_invitation(ctx: HandlerContext, msg: UserInvitedV1) -> None:
    """Email an invitation to join a tenant."""
    handlers.send_invitation(ctx, msg)


@domain_task(contract=PurchaseCompletedV1)
def record_purchase_receipt(ctx: HandlerContext, msg: PurchaseCompletedV1) -> None:
    """Record the buyer's receipt for a completed purchase."""
    handlers.record_purchase_receipt(ctx, msg)


@domain_task(contract=PurchaseFailedV1)
def record_purchase_failure(ctx: HandlerContext, msg: PurchaseFailedV1) -> None:
    """Record the notice of a failed purchase, with the reason."""
    handlers.record_purchase_failure(ctx, msg)


@domain_task(contract=PurchaseRefundedV1)
def record_refund_notice(ctx: HandlerContext, msg: PurchaseRefundedV1) -> None:
    """Record the notice of a refunded purchase."""
    handlers.record_refund_notice(ctx, msg)


@domain_task(contract=TenantPromotedV1)
def record_promotion_notice(ctx: HandlerContext, msg: TenantPromotedV1) -> None:
    """Record the notice that a tenant now has a database of its own."""
    handlers.record_promotion_notice(ctx, msg)
