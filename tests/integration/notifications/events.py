"""Events the notifications suites send, and what they expect of emails."""
from __future__ import annotations

import uuid
from email.message import EmailMessage

from domain.messaging.contracts.assets import AssetProcessedV1
from domain.messaging.contracts.purchases import PurchaseFailedV1


def asset_ready(tenant_id: uuid.UUID, owner_id: uuid.UUID, filename: str = "report.pdf") -> AssetProcessedV1:
    """An asset of ``owner_id`` is ready (category ``assets``: throttled past the rate)."""
    return AssetProcessedV1(asset_id=uuid.uuid4(), tenant_id=tenant_id, owner_id=owner_id, filename=filename,
                            status="ready")


def payment_failed(tenant_id: uuid.UUID, buyer_id: uuid.UUID,
                   product: str = "Extra seats") -> PurchaseFailedV1:
    """A purchase of ``buyer_id`` failed (category ``billing``: mandatory, never throttled)."""
    return PurchaseFailedV1(purchase_id=uuid.uuid4(), tenant_id=tenant_id, buyer_user_id=buyer_id,
                            product_name=product, reason="the card was declined")


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and the HTML part of ``message``."""
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None, message.get_content_type()
    return text.get_content(), html.get_content()
