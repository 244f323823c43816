"""Message handlers of the notifications context."""
from __future__ import annotations

import uuid
from html import escape

from domain.messaging.contracts.iam import UserInvitedV1
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseFailedV1, PurchaseRefundedV1
from domain.messaging.contracts.tenancy import TenantPromotedV1, TenantProvisionedV1
from domain.messaging.handling import HandlerContext
from domain.notifications.mail import Email, Mailer
from domain.notifications.models import Notice
from domain.purchases.money import format_amount


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


def _notice(ctx: HandlerContext, tenant_id: uuid.UUID, user_id: uuid.UUID, category: str, *,
            title: str, body: str) -> None:
    """One notice per (event, recipient)."""
    ctx.session.add(Notice(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id,
                           event_id=uuid.UUID(ctx.envelope.event_id), category=category,
                           title=title[:300], body=body))


def record_purchase_receipt(ctx: HandlerContext, msg: PurchaseCompletedV1) -> None:
    """Give the buyer a receipt for a completed purchase."""
    amount = format_amount(msg.amount_minor, msg.currency)
    _notice(ctx, msg.tenant_id, msg.buyer_user_id, "billing", title=f"Receipt: {msg.product_name}",
            body=f"You were charged {amount} for {msg.product_name}. Payment reference: {msg.charge_id}.")


def record_purchase_failure(ctx: HandlerContext, msg: PurchaseFailedV1) -> None:
    """Tell the buyer a purchase failed, and why."""
    _notice(ctx, msg.tenant_id, msg.buyer_user_id, "billing", title=f"Payment failed: {msg.product_name}",
            body=f"The payment for {msg.product_name} did not go through: {msg.reason}. Nothing was charged.")


def record_refund_notice(ctx: HandlerContext, msg: PurchaseRefundedV1) -> None:
    """Tell the buyer a purchase was refunded."""
    amount = format_amount(msg.amount_minor, msg.currency)
    _notice(ctx, msg.tenant_id, msg.buyer_user_id, "billing", title=f"Refunded: {msg.product_name}",
            body=f"{amount} for {msg.product_name} was refunded to your card. "
                 f"Refund reference: {msg.refund_id}.")


def record_promotion_notice(ctx: HandlerContext, msg: TenantPromotedV1) -> None:
    """Tell whoever asked for a promotion that the tenant has its own database (no one asked: no notice)."""
    if msg.requested_by is None:
        return
    _notice(ctx, msg.tenant_id, msg.requested_by, "tenancy", title=f"{msg.tenant_name} has its own database",
            body=f"All of {msg.tenant_name}'s data ({msg.rows} rows) now lives in a database of its own.")
