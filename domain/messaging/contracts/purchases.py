"""Messages of the purchases context (and the billing and tenancy reactions to them)."""
from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from domain.messaging.contracts import Contract


class ChargePurchaseV1(Contract):
    """Command: charge a recorded (pending) purchase through the payment gateway."""

    message_type: ClassVar[str] = "purchases.ChargePurchase"
    kind: ClassVar[Literal["command", "event"]] = "command"

    purchase_id: uuid.UUID
    tenant_id: uuid.UUID


class RefundPurchaseV1(Contract):
    """Command: refund a completed purchase (an operator asked for it)."""

    message_type: ClassVar[str] = "purchases.RefundPurchase"
    kind: ClassVar[Literal["command", "event"]] = "command"

    purchase_id: uuid.UUID
    tenant_id: uuid.UUID
    reason: str


class PurchaseCompletedV1(Contract):
    """Event: a purchase was charged. Fans out to the receipt notice, the plan change and
    the billing ledger."""

    message_type: ClassVar[str] = "purchases.PurchaseCompleted"

    purchase_id: uuid.UUID
    tenant_id: uuid.UUID
    buyer_user_id: uuid.UUID
    product_code: str
    product_name: str
    product_kind: Literal["plan", "addon"]
    # The plan a "plan" product moves the tenant to (None for an add-on).
    plan: str | None
    amount_minor: int
    currency: str
    charge_id: str


class PurchaseFailedV1(Contract):
    """Event: a purchase could not be charged (declined, insufficient funds, gateway down)."""

    message_type: ClassVar[str] = "purchases.PurchaseFailed"

    purchase_id: uuid.UUID
    tenant_id: uuid.UUID
    buyer_user_id: uuid.UUID
    product_name: str
    reason: str


class PurchaseRefundedV1(Contract):
    """Event: a completed purchase was refunded; its plan change is reversed."""

    message_type: ClassVar[str] = "purchases.PurchaseRefunded"

    purchase_id: uuid.UUID
    tenant_id: uuid.UUID
    buyer_user_id: uuid.UUID
    product_code: str
    product_name: str
    product_kind: Literal["plan", "addon"]
    amount_minor: int
    currency: str
    refund_id: str
