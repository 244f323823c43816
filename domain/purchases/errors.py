"""Errors of the purchases context: each names the field it is about."""
from __future__ import annotations

from domain.errors import Conflict, DomainError, NotFound

IDEMPOTENCY_KEY = "Idempotency-Key"


class UnknownProduct(DomainError):
    """The request names a product the catalogue does not have."""

    def __init__(self) -> None:
        super().__init__("no such product", field="product_code")


class ProductRetired(DomainError):
    """The product was retired: it can no longer be bought."""

    def __init__(self) -> None:
        super().__init__("is retired and can no longer be bought", field="product_code")


class PriceMismatch(DomainError):
    """The price the client was shown is not the catalogue's (it changed, or was tampered with)."""

    def __init__(self, price: str) -> None:
        super().__init__(f"does not match the current price ({price})", field="amount_minor")


class CurrencyMismatch(DomainError):
    """The client was shown the price in another currency than the catalogue's."""

    def __init__(self, currency: str) -> None:
        super().__init__(f"does not match the product's currency ({currency})", field="currency")


class InvalidCardNumber(DomainError):
    """The payment gateway cannot use the card number."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, field="card_number")


class GatewayDown(DomainError):
    """The payment gateway cannot be reached right now: nothing was recorded, try again."""

    status = 503

    def __init__(self) -> None:
        super().__init__("the payment gateway cannot be reached; nothing was charged, try again shortly")


class IdempotencyKeyReused(DomainError):
    """The idempotency key already recorded a purchase with a different request."""

    def __init__(self) -> None:
        super().__init__("was already used for a different purchase request; use a new key",
                         field=IDEMPOTENCY_KEY)


class PurchaseNotFound(NotFound):
    """No such purchase (or it belongs to another tenant)."""

    def __init__(self) -> None:
        super().__init__("no such purchase", field="purchase_id")


class NotRefundable(Conflict):
    """Only a completed purchase can be refunded."""

    def __init__(self, status: str) -> None:
        super().__init__(f"only a completed purchase can be refunded; this one is {status}",
                         field="purchase_id")


class ProductNotFound(NotFound):
    """No product with this code (operator endpoints)."""

    def __init__(self) -> None:
        super().__init__("no such product", field="product_code")


class ProductCodeTaken(Conflict):
    """Another product already has this code."""

    def __init__(self) -> None:
        super().__init__("is already taken by another product", field="code")


class InvalidProduct(DomainError):
    """A product the catalogue cannot hold (names the field)."""
