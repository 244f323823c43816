"""Tasks of the notifications context (queue ``notifications``)."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from domain.db.base import utcnow
from domain.messaging.contracts.assets import AssetProcessedV1
from domain.messaging.contracts.iam import UserInvitedV1
from domain.messaging.contracts.identity import EmailVerificationRequestedV1, PasswordResetRequestedV1
from domain.messaging.contracts.publications import PublicationPublishedV1
from domain.messaging.contracts.purchases import PurchaseCompletedV1, PurchaseFailedV1, PurchaseRefundedV1
from domain.messaging.contracts.tenancy import TenantPromotedV1, TenantProvisionedV2, TrialEndingV1
from domain.messaging.handling import HandlerContext
from domain.notifications import digest, handlers, sending
from workers.base import domain_task


@domain_task(contract=TenantProvisionedV2)
def record_welcome_notice(ctx: HandlerContext, msg: TenantProvisionedV2) -> None:
    """Record the welcome notice of a new tenant's first admin (and email its address's
    verification link)."""
    handlers.record_welcome_notice(ctx, msg)


@domain_task(contract=UserInvitedV1)
def send_invitation(ctx: HandlerContext, msg: UserInvitedV1) -> None:
    """Email an invitation to join a tenant."""
    handlers.send_invitation(ctx, msg)


@domain_task(contract=EmailVerificationRequestedV1)
def send_email_verification(ctx: HandlerContext, msg: EmailVerificationRequestedV1) -> None:
    """Email a user the new link that verifies their address."""
    handlers.send_email_verification(ctx, msg)


@domain_task(contract=PasswordResetRequestedV1)
def send_password_reset(ctx: HandlerContext, msg: PasswordResetRequestedV1) -> None:
    """Email a user the link that sets a new password."""
    handlers.send_password_reset(ctx, msg)


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


@domain_task(contract=AssetProcessedV1)
def record_asset_notice(ctx: HandlerContext, msg: AssetProcessedV1) -> None:
    """Record the owner's notice that an asset is ready or was rejected."""
    handlers.record_asset_notice(ctx, msg)


@domain_task(contract=TrialEndingV1)
def record_trial_notice(ctx: HandlerContext, msg: TrialEndingV1) -> None:
    """Remind a trial tenant's admins that the trial ends soon."""
    handlers.record_trial_notice(ctx, msg)


@domain_task(contract=PublicationPublishedV1)
def record_publication_notice(ctx: HandlerContext, msg: PublicationPublishedV1) -> None:
    """Tell a publication's audience it is out."""
    handlers.record_publication_notice(ctx, msg)


@shared_task(name="tasks.notifications.send_digests", bind=True)
def send_digests(self: Any) -> dict[str, Any]:
    """Beat: from DIGEST_HOUR on, send each due user today's digest (once per user and day)."""
    settings = self.app.settings
    run = digest.send_digests(self.app.provider, self.app.ports, now=utcnow(), hour=settings.digest_hour,
                              grace=digest.grace_for(settings.task_time_limit))
    return {"day": run.day.isoformat() if run.day else None, **run.outcomes}


@shared_task(name="tasks.notifications.send_emails", bind=True, ignore_result=True)
def send_emails(self: Any) -> dict[str, int]:
    """Send the emails waiting for the sending stage, in batches (woken by handlers)."""
    ports = self.app.ports
    waker = ports["wake_sender"]
    return dict(sending.drain(self.app.provider, ports["mailer"], ports["sealer"],
                              more=waker.another, awake=waker.renew, idle=waker.clear))


@shared_task(name="tasks.notifications.sweep_emails", bind=True)
def sweep_emails(self: Any) -> dict[str, Any]:
    """Beat: settle attempts that died mid-send, and wake a sender if emails are due."""
    ports = self.app.ports
    died = sending.sweep(self.app.provider, idempotent=ports["mailer"].idempotent)
    due = sending.anything_due(self.app.provider)
    if due:
        ports["wake_sender"].another()
    return {"died": died, "due": due}
