"""Message handlers of the notifications context."""
from __future__ import annotations

import uuid

from domain.messaging.contracts.tenancy import TenantProvisionedV1
from domain.messaging.handling import HandlerContext
from domain.notifications.models import Notice


def record_welcome_notice(ctx: HandlerContext, msg: TenantProvisionedV1) -> None:
    """Welcome the first admin of a newly provisioned tenant."""
    ctx.session.add(Notice(
        id=uuid.uuid4(), tenant_id=msg.tenant_id, user_id=msg.admin_user_id,
        event_id=uuid.UUID(ctx.envelope.event_id), category="welcome",
        title=f"Welcome to Allotment, {msg.admin_name}",
        body=f"{msg.tenant_name} is ready. Invite your team and set up your organisation.",
    ))
