"""The payment gateway port: what the purchases context needs from a card processor.

A card number reaches the gateway once, to be tokenised; everything after works with the
token. ``charge`` and ``refund`` take an idempotency key: the same key never charges (or
refunds) twice, it answers with the first result, so a retry after a crash or a timeout
is always safe. Definitive refusals raise ``PaymentRefused`` (the purchase fails at once);
``GatewayUnavailable`` means the gateway answered "nothing was done: try again later with
the same key", and its ``OutcomeUnknown`` that no answer came ("something may have been
done: ask again with the same key").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

CARD_DIGITS = range(12, 20)


class GatewayError(Exception):
    """Something the gateway said no to, or could not answer."""

    def __init__(self, reason: str, code: str = "gateway_error") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class PaymentRefused(GatewayError):
    """A definitive no (declined, insufficient funds, unusable payment method): retrying
    with the same key gives the same answer."""


class InvalidCard(GatewayError):
    """The gateway cannot use this card number (not one it knows, not valid)."""


class GatewayUnavailable(GatewayError):
    """The gateway answered that it cannot do it now: nothing was done under this key (it
    would have answered with what was, from an earlier request). Retry later with the same key."""


class OutcomeUnknown(GatewayUnavailable):
    """No answer from the gateway: not reached, or the answer lost on the way (a timeout, a
    connection dropped mid-request). What was done under this key, by this request or an
    earlier one, is not known: a charge or refund may have been made. Ask again with the
    same key, which answers with it if it was; never conclude that it failed."""


class IdempotencyMismatch(GatewayError):
    """An idempotency key already used for a different charge or refund."""


@dataclass(frozen=True)
class PaymentMethod:
    """A tokenised card: the token stands for the number from now on.

    ``fingerprint`` is the same for every tokenisation of the same number (and different
    across numbers), so a repeated request can be recognised without the number.
    """

    token: str
    fingerprint: str
    last4: str
    brand: str


@dataclass(frozen=True)
class Charge:
    """A successful charge, as the gateway recorded it."""

    id: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Refund:
    """A refund of a charge, as the gateway recorded it."""

    id: str
    charge_id: str
    amount_minor: int


class PaymentGateway(Protocol):
    """A card processor."""

    def tokenize(self, card_number: str) -> PaymentMethod:
        """Exchange a card number for a payment-method token (InvalidCard if unusable)."""

    def charge(self, token: str, amount_minor: int, currency: str, *, idempotency_key: str) -> Charge:
        """Charge the payment method; the same key returns the first charge."""

    def refund(self, charge_id: str, amount_minor: int, *, idempotency_key: str) -> Refund:
        """Refund (part of) a charge; the same key returns the first refund."""


def normalise_card_number(value: str) -> str:
    """The digits of a card number as people type it (spaces and dashes dropped)."""
    return value.replace(" ", "").replace("-", "")


def card_number_problem(value: str) -> str | None:
    """Why ``value`` is not a card number, or None: 12-19 digits passing the Luhn check."""
    digits = normalise_card_number(value)
    if not digits.isascii() or not digits.isdigit() or len(digits) not in CARD_DIGITS:
        return "must be 12 to 19 digits"
    if not luhn_valid(digits):
        return "is not a valid card number (check digit)"
    return None


def luhn_valid(digits: str) -> bool:
    """True if ``digits`` pass the Luhn (mod 10) check."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0
