"""Tasks of the notifications context (queue ``notifications``)."""
from __future__ import annotations

from domain.messaging.contracts.iam import UserInvitedV1
from domain.messaging.contracts.tenancy import TenantProvisionedV1
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
