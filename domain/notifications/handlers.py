"""Message handlers of the notifications context."""
from __future__ import annotations

import uuid
from html import escape

from domain.messaging.contracts.iam import UserInvitedV1
from domain.messaging.contracts.tenancy import TenantProvisionedV1
from domain.messaging.handling import HandlerContext
from domain.notifications.mail import Email, Mailer
from domain.notifications.models import Notice


def record_welcome_notice(ctx: HandlerContext, msg: TenantProvisionedV1) -> None:
    """Welcome the first admin of a newly provisioned tenant."""
    ctx.session.add(Notice(
        id=uuid.uuid4(), tenant_id=msg.tenant_id, user_id=msg.admin_user_id,
        event_id=uuid.UUID(ctx.envelope.event_id), category="welcome",
        title=f"Welcome to Allotment, {msg.admin_name}",
        body=f"{msg.tenant_name} is ready. Invite your team and set up your organisation.",
    ))


def send_invitation(ctx: HandlerContext, msg: UserInvitedV1) -> None:
    """Email the invitation link to the person invited."""
    token = ctx.ports["sealer"].unseal(msg.sealed_token)
    if token is None:  # sealed under another SECRET_KEY: fail, so operators see it dead
        raise ValueError("the invitation token cannot be unsealed (was SECRET_KEY rotated?)")
    link = f"{ctx.ports['public_url'].rstrip('/')}/identity/invitations/{token}"
    expires = msg.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    text = (f"{msg.inviter_name} invited you to join {msg.tenant_name} on Allotment "
            f"as {msg.role}.\n\nAccept the invitation: {link}\n\nThe link works once and "
            f"expires on {expires}.\n")
    html = (f"<p>{escape(msg.inviter_name)} invited you to join <strong>{escape(msg.tenant_name)}"
            f"</strong> on Allotment as {escape(msg.role)}.</p>"
            f'<p><a href="{escape(link)}">Accept the invitation</a></p>'
            f"<p>The link works once and expires on {escape(expires)}.</p>")
    mailer: Mailer = ctx.ports["mailer"]
    mailer.send(Email(key=ctx.envelope.id, to=str(msg.email),
                      subject=f"You are invited to {msg.tenant_name}", text=text, html=html))
