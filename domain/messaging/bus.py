"""Who handles what: one handler per command, any number of subscribers per event.

Handlers are named ``<context>.<function>``; the Celery task that runs one is
``tasks.<context>.<function>`` and is routed to the ``<context>`` queue. This table is the
database-side fan-out of the seeds' SNS topics and SQS queues (DESIGN §4.1).
"""
from __future__ import annotations

from typing import Literal

from domain.messaging.contracts import Contract
from domain.messaging.contracts import assets as asset_contracts
from domain.messaging.contracts import employment as employment_contracts
from domain.messaging.contracts import iam as iam_contracts
from domain.messaging.contracts import identity as identity_contracts
from domain.messaging.contracts import publications as publication_contracts
from domain.messaging.contracts import purchases as purchase_contracts
from domain.messaging.contracts import tenancy as tenancy_contracts

# Which database a handler writes (and keeps its inbox in): the management database, or
# the database of the message's tenant.
Target = Literal["management", "tenant"]
TARGETS: dict[str, Target] = {
    "tenancy.provision_tenant": "management",
    "notifications.record_welcome_notice": "tenant",
    "notifications.send_invitation": "management",
    "notifications.send_email_verification": "management",
    "notifications.send_password_reset": "management",
    "purchases.charge_purchase": "management",
    "purchases.refund_purchase": "management",
    "tenancy.apply_plan": "management",
    "tenancy.revert_plan": "management",
    "tenancy.promote_tenant": "management",
    "billing.record_charge": "management",
    "billing.record_refund": "management",
    "notifications.record_purchase_receipt": "tenant",
    "notifications.record_purchase_failure": "tenant",
    "notifications.record_refund_notice": "tenant",
    "notifications.record_promotion_notice": "tenant",
    "employment.run_import": "tenant",
    "employment.remove_edges": "management",  # the relation graph lives there
    "assets.process_asset": "tenant",
    "notifications.record_asset_notice": "tenant",
    "notifications.record_trial_notice": "tenant",
    "notifications.record_publication_notice": "tenant",
    "publications.publish_publication": "tenant",
}

COMMAND_HANDLERS: dict[str, str] = {
    tenancy_contracts.ProvisionTenantV1.message_type: "tenancy.provision_tenant",
    tenancy_contracts.PromoteTenantV1.message_type: "tenancy.promote_tenant",
    purchase_contracts.ChargePurchaseV1.message_type: "purchases.charge_purchase",
    purchase_contracts.RefundPurchaseV1.message_type: "purchases.refund_purchase",
    employment_contracts.RunImportV1.message_type: "employment.run_import",
    asset_contracts.ProcessAssetV1.message_type: "assets.process_asset",
    publication_contracts.PublishPublicationV1.message_type: "publications.publish_publication",
}

SUBSCRIBERS: dict[str, tuple[str, ...]] = {
    tenancy_contracts.TenantProvisionedV2.message_type: ("notifications.record_welcome_notice",),
    iam_contracts.UserInvitedV1.message_type: ("notifications.send_invitation",),
    identity_contracts.EmailVerificationRequestedV1.message_type: ("notifications.send_email_verification",),
    identity_contracts.PasswordResetRequestedV1.message_type: ("notifications.send_password_reset",),
    purchase_contracts.PurchaseCompletedV1.message_type: (
        "notifications.record_purchase_receipt", "tenancy.apply_plan", "billing.record_charge"),
    purchase_contracts.PurchaseFailedV1.message_type: ("notifications.record_purchase_failure",),
    purchase_contracts.PurchaseRefundedV1.message_type: (
        "notifications.record_refund_notice", "tenancy.revert_plan", "billing.record_refund"),
    tenancy_contracts.TenantPromotedV1.message_type: ("notifications.record_promotion_notice",),
    employment_contracts.EmployeeDeletedV1.message_type: ("employment.remove_edges",),
    asset_contracts.AssetProcessedV1.message_type: ("notifications.record_asset_notice",),
    tenancy_contracts.TrialEndingV1.message_type: ("notifications.record_trial_notice",),
    publication_contracts.PublicationPublishedV1.message_type: ("notifications.record_publication_notice",),
}

CONTRACTS: dict[str, type[Contract]] = {
    c.message_type: c
    for c in (
        tenancy_contracts.ProvisionTenantV1,
        tenancy_contracts.TenantProvisionedV2,
        tenancy_contracts.PromoteTenantV1,
        tenancy_contracts.TenantPromotedV1,
        iam_contracts.UserInvitedV1,
        identity_contracts.EmailVerificationRequestedV1,
        identity_contracts.PasswordResetRequestedV1,
        purchase_contracts.ChargePurchaseV1,
        purchase_contracts.RefundPurchaseV1,
        purchase_contracts.PurchaseCompletedV1,
        purchase_contracts.PurchaseFailedV1,
        purchase_contracts.PurchaseRefundedV1,
        employment_contracts.EmployeeDeletedV1,
        employment_contracts.RunImportV1,
        asset_contracts.ProcessAssetV1,
        asset_contracts.AssetProcessedV1,
        tenancy_contracts.TrialEndingV1,
        publication_contracts.PublicationPublishedV1,
        publication_contracts.PublishPublicationV1,
    )
}


def handlers_for(message: Contract) -> tuple[str, ...]:
    """The handler names a message is delivered to (exactly one for a command)."""
    if message.kind == "command":
        return (COMMAND_HANDLERS[message.message_type],)
    return SUBSCRIBERS.get(message.message_type, ())


def task_name(handler: str) -> str:
    """The Celery task that runs ``handler``."""
    return f"tasks.{handler}"


def target_of(handler: str) -> Target:
    """The database ``handler`` writes: "management" or "tenant"."""
    return TARGETS[handler]
