"""Message handlers of the notifications context: each event through the one pipeline
(``pipeline.notify``), described and addressed here."""
from __future__ import annotations

from domain.messaging.contracts.assets import AssetProcessedV1
from domain.messaging.contracts.iam import UserInvitedV1
from domain.messaging.contracts.identity import EmailVerificationRequestedV1, PasswordResetRequestedV1
from domain.messaging.contracts.publications import PublicationPublishedV1
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseFailedV1, PurchaseRefundedV1
from domain.messaging.contracts.tenancy import TenantPromotedV1, TenantProvisionedV2, TrialEndingV1
from domain.messaging.handling import HandlerContext
from domain.notifications import texts
from domain.notifications.pipeline import Announcement, notify
from domain.notifications.recipients import Person, admins_of, members_of
from domain.purchases.money import format_amount


def _unsealed(ctx: HandlerContext, sealed: str, what: str) -> str:
    token: str | None = ctx.ports["sealer"].unseal(sealed)
    if token is None:  # sealed under another SECRET_KEY: fail, so operators see it dead
        raise ValueError(f"the {what} token cannot be unsealed (was SECRET_KEY rotated?)")
    return token


def _public_link(ctx: HandlerContext, path: str) -> str:
    return f"{str(ctx.ports['public_url']).rstrip('/')}{path}"


def record_welcome_notice(ctx: HandlerContext, msg: TenantProvisionedV2) -> None:
    """Welcome the first admin of a newly provisioned tenant; the email carries the link
    that verifies their address (in its body only; a version 1 event has none)."""
    params: dict[str, object] = {"name": msg.admin_name, "tenant": msg.tenant_name}
    link = None
    if msg.sealed_verification_token is not None:
        token = _unsealed(ctx, msg.sealed_verification_token, "verification")
        link = _public_link(ctx, f"/identity/verify/{token}")
        params["expires"] = msg.verification_expires_at
    notify(ctx, Announcement(msg.tenant_id, "welcome", texts.WELCOME, params, extra={"verify_url": link}),
           [Person(msg.admin_user_id, str(msg.admin_email), msg.admin_name)])


def send_invitation(ctx: HandlerContext, msg: UserInvitedV1) -> None:
    """Email the invitation link to the person invited (the link is in the body only)."""
    token = _unsealed(ctx, msg.sealed_token, "invitation")
    link = _public_link(ctx, f"/identity/invitations/{token}")
    announcement = Announcement(msg.tenant_id, "security", texts.INVITATION,
                                {"tenant": msg.tenant_name, "inviter": msg.inviter_name, "role": msg.role,
                                 "expires": msg.expires_at},
                                extra={"accept_url": link})
    notify(ctx, announcement, [Person(None, str(msg.email))], management=ctx.session)


def send_email_verification(ctx: HandlerContext, msg: EmailVerificationRequestedV1) -> None:
    """Email the link that verifies a user's address to that address (in its body only),
    in the user's language; no in-app notice (the handler writes the management database)."""
    token = _unsealed(ctx, msg.sealed_token, "verification")
    link = _public_link(ctx, f"/identity/verify/{token}")
    announcement = Announcement(msg.tenant_id, "security", texts.EMAIL_VERIFICATION,
                                {"email": str(msg.email), "expires": msg.expires_at},
                                link="/identity/sessions", extra={"verify_url": link}, members_only=False)
    notify(ctx, announcement, [Person(msg.user_id, str(msg.email), msg.name)], management=ctx.session)


def send_password_reset(ctx: HandlerContext, msg: PasswordResetRequestedV1) -> None:
    """Email the link that sets a new password to the account's address (in its body only),
    in the account's language; no in-app notice (its owner cannot sign in)."""
    token = _unsealed(ctx, msg.sealed_token, "password reset")
    link = _public_link(ctx, f"/identity/password-reset/{token}")
    announcement = Announcement(None, "security", texts.PASSWORD_RESET,
                                {"email": str(msg.email), "expires": msg.expires_at},
                                link="/identity/sign-in", extra={"reset_url": link})
    notify(ctx, announcement, [Person(msg.user_id, str(msg.email), msg.name)], management=ctx.session)


def record_purchase_receipt(ctx: HandlerContext, msg: PurchaseCompletedV1) -> None:
    """Give the buyer a receipt for a completed purchase."""
    notify(ctx, Announcement(msg.tenant_id, "billing", texts.RECEIPT, {
        "product": msg.product_name, "amount": format_amount(msg.amount_minor, msg.currency),
        "reference": msg.charge_id}), [Person(msg.buyer_user_id)])


def record_purchase_failure(ctx: HandlerContext, msg: PurchaseFailedV1) -> None:
    """Tell the buyer a purchase failed, and why."""
    notify(ctx, Announcement(msg.tenant_id, "billing", texts.PURCHASE_FAILED,
                             {"product": msg.product_name, "reason": msg.reason}),
           [Person(msg.buyer_user_id)])


def record_refund_notice(ctx: HandlerContext, msg: PurchaseRefundedV1) -> None:
    """Tell the buyer a purchase was refunded."""
    notify(ctx, Announcement(msg.tenant_id, "billing", texts.REFUND, {
        "product": msg.product_name, "amount": format_amount(msg.amount_minor, msg.currency),
        "reference": msg.refund_id}), [Person(msg.buyer_user_id)])


def record_promotion_notice(ctx: HandlerContext, msg: TenantPromotedV1) -> None:
    """Tell whoever asked for a promotion that the tenant has its own database (no one asked: no notice)."""
    if msg.requested_by is None:
        return
    notify(ctx, Announcement(msg.tenant_id, "tenancy", texts.PROMOTED,
                             {"tenant": msg.tenant_name, "rows": msg.rows}), [Person(msg.requested_by)])


def record_asset_notice(ctx: HandlerContext, msg: AssetProcessedV1) -> None:
    """Tell an asset's owner it is ready, or why it was rejected."""
    text = texts.ASSET_READY if msg.status == "ready" else texts.ASSET_REJECTED
    notify(ctx, Announcement(msg.tenant_id, "assets", text,
                             {"filename": msg.filename, "reason": msg.reason or ""}), [Person(msg.owner_id)])


def record_trial_notice(ctx: HandlerContext, msg: TrialEndingV1) -> None:
    """Remind the tenant's owners and admins that its trial ends soon."""
    with ctx.provider.management() as session:
        admins = admins_of(session, msg.tenant_id)
    notify(ctx, Announcement(msg.tenant_id, "billing", texts.TRIAL_ENDING,
                             {"tenant": msg.tenant_name, "date": msg.ends_at}, link="/purchases/checkout"),
           admins)


def record_publication_notice(ctx: HandlerContext, msg: PublicationPublishedV1) -> None:
    """Tell a publication's audience (its recipients, or every member) that it is out."""
    if msg.recipient_ids is not None:
        people = [Person(user_id) for user_id in msg.recipient_ids]
    else:
        with ctx.provider.management() as session:
            people = members_of(session, msg.tenant_id)
    notify(ctx, Announcement(msg.tenant_id, "publications", texts.PUBLISHED,
                             {"title": msg.title, "author": msg.author_name}), people)
