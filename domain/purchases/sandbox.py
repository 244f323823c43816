"""The sandbox payment gateway: a card processor for development and tests.

It behaves like a real one as far as the purchases context can tell. Deterministic test
cards choose the outcome (``TEST_CARDS``); any other number is refused at tokenisation.
It keeps its own ledger (the ``sandbox_*`` tables) and writes it in its own transaction on
its own connection, so what it recorded stays recorded whatever happens to the caller's
transaction, exactly like an outside processor. Idempotency keys are honoured: a second
charge (or refund) with a key already used answers with the first one and records nothing
new; the same key for a different amount or card is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    Row,
    String,
    create_engine,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.pool import NullPool

from domain.db.base import ManagementBase, created_at_column
from domain.purchases.gateway import (
    Charge,
    GatewayError,
    GatewayUnavailable,
    IdempotencyMismatch,
    InvalidCard,
    OutcomeUnknown,
    PaymentMethod,
    PaymentRefused,
    Refund,
    normalise_card_number,
)

# Test card -> (behaviour, brand). "transient" fails the first TRANSIENT_FAILURES charge
# attempts of each idempotency key with a network error, then approves. "answer_lost_once"
# charges and loses the answer of the first attempt (a timeout); asked again, it answers
# with that charge. "answer_lost" charges once and loses every answer.
TEST_CARDS: dict[str, tuple[str, str]] = {
    "4242424242424242": ("approve", "visa"),
    "4000000000000002": ("decline", "visa"),
    "4000000000009995": ("insufficient_funds", "visa"),
    "4000000000000119": ("transient", "visa"),
    "4000000000000259": ("unavailable", "visa"),
    "4000000000000267": ("answer_lost_once", "visa"),
    "4000000000000275": ("answer_lost", "visa"),
}
ANSWER_LOST = "the gateway's answer was lost (timeout)"
TRANSIENT_FAILURES = 2
_REFUSALS = {
    "decline": ("card_declined", "the card was declined"),
    "insufficient_funds": ("insufficient_funds", "insufficient funds on the card"),
}
T = TypeVar("T")


class SandboxPaymentMethod(ManagementBase):
    """A tokenised test card: the behaviour its number chose, never the number."""

    __tablename__ = "sandbox_payment_methods"

    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    last4: Mapped[str] = mapped_column(String(4))
    brand: Mapped[str] = mapped_column(String(20))
    behaviour: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = created_at_column()


class SandboxCharge(ManagementBase):
    """A charge the sandbox made (``succeeded``) or refused (``declined``), one per key."""

    __tablename__ = "sandbox_charges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    token: Mapped[str] = mapped_column(ForeignKey("sandbox_payment_methods.token"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20))
    decline_code: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = created_at_column()


class SandboxRefund(ManagementBase):
    """A refund the sandbox made, one per key."""

    __tablename__ = "sandbox_refunds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    charge_id: Mapped[str] = mapped_column(ForeignKey("sandbox_charges.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()


class SandboxAttempt(ManagementBase):
    """How many charge requests arrived with each idempotency key (retries included)."""

    __tablename__ = "sandbox_attempts"

    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)


def _id(prefix: str) -> str:
    return f"{prefix}_sb_{secrets.token_urlsafe(18)}"


class SandboxGateway:
    """The sandbox card processor on the database of ``database_url`` (its own tables)."""

    def __init__(self, database_url: str, secret: str) -> None:
        self.database_url = database_url
        # Fingerprints are keyed: a card number cannot be recovered by hashing candidates.
        self._fingerprint_key = hashlib.sha256(b"sandbox card fingerprint\0" + secret.encode()).digest()
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def _connection_engine(self) -> Engine:
        # A connection per call, opened and closed like a request to an outside service: it
        # never shares the caller's connection or transaction, and nothing is left open.
        with self._lock:
            if self._engine is None:
                self._engine = create_engine(self.database_url, poolclass=NullPool)
            return self._engine

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction of the sandbox's own. Not reached, or lost on the way
        (its commit may have happened): no answer, the outcome is unknown."""
        try:
            connection = self._connection_engine().connect()
        except OperationalError as exc:
            raise OutcomeUnknown(f"the sandbox gateway cannot be reached: {exc.orig}",
                                 "network_error") from exc
        try:
            with connection, connection.begin():
                return work(connection)
        except OperationalError as exc:
            raise OutcomeUnknown(f"the sandbox gateway's answer was lost: {exc.orig}",
                                 "network_error") from exc

    # -- the port -----------------------------------------------------------------------
    def tokenize(self, card_number: str) -> PaymentMethod:
        """A new payment-method token for a test card; InvalidCard for any other number."""
        digits = normalise_card_number(card_number)
        card = TEST_CARDS.get(digits)
        if card is None:
            raise InvalidCard("is not a sandbox test card (4242 4242 4242 4242 is approved)",
                              "unknown_test_card")
        fingerprint = hmac.new(self._fingerprint_key, digits.encode(), "sha256").hexdigest()
        method = PaymentMethod(_id("pm"), fingerprint, digits[-4:], card[1])
        self._transaction(lambda c: c.execute(insert(SandboxPaymentMethod).values(
            token=method.token, fingerprint=method.fingerprint, last4=method.last4,
            brand=method.brand, behaviour=card[0])))
        return method

    def charge(self, token: str, amount_minor: int, currency: str, *, idempotency_key: str) -> Charge:
        """Charge a tokenised card once per key; raise what the card's behaviour says."""
        outcome = self._transaction(
            lambda c: self._charge(c, token, amount_minor, currency, idempotency_key))
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome

    def _charge(self, conn: Connection, token: str, amount_minor: int, currency: str,
                key: str) -> Charge | GatewayError:
        # Counting the attempt takes the key's row lock: requests with one key queue here.
        attempts = conn.scalar(insert(SandboxAttempt).values(idempotency_key=key, attempts=1)
                               .on_conflict_do_update(index_elements=[SandboxAttempt.idempotency_key],
                                                      set_={"attempts": SandboxAttempt.attempts + 1})
                               .returning(SandboxAttempt.attempts))
        behaviour = conn.scalar(select(SandboxPaymentMethod.behaviour)
                                .where(SandboxPaymentMethod.token == token))
        first = conn.execute(select(SandboxCharge).where(SandboxCharge.idempotency_key == key)).first()
        if first is not None:
            return _replayed(first, token, amount_minor, currency, behaviour)
        if behaviour is None:
            return PaymentRefused("the payment method does not exist", "invalid_payment_method")
        if behaviour == "unavailable" or (behaviour == "transient" and (attempts or 0) <= TRANSIENT_FAILURES):
            return GatewayUnavailable("network error between the gateway and the card network",
                                      "network_error")
        refusal = _REFUSALS.get(behaviour)
        charge_id = _id("ch")
        conn.execute(insert(SandboxCharge).values(
            id=charge_id, idempotency_key=key, token=token, amount_minor=amount_minor,
            currency=currency, status="declined" if refusal else "succeeded",
            decline_code=refusal[0] if refusal else None))
        if refusal:
            return PaymentRefused(refusal[1], refusal[0])
        if behaviour in ("answer_lost_once", "answer_lost"):  # charged; the answer never arrives
            return OutcomeUnknown(ANSWER_LOST, "timeout")
        return Charge(charge_id, amount_minor, currency)

    def refund(self, charge_id: str, amount_minor: int, *, idempotency_key: str) -> Refund:
        """Refund a succeeded charge once per key (never more than was charged)."""
        outcome = self._transaction(lambda c: self._refund(c, charge_id, amount_minor, idempotency_key))
        if isinstance(outcome, GatewayError):
            raise outcome
        return outcome

    def _refund(self, conn: Connection, charge_id: str, amount_minor: int, key: str) -> Refund | GatewayError:
        # The charge's row lock queues refunds of one charge, so the sum below stays true.
        charge = conn.execute(select(SandboxCharge).where(SandboxCharge.id == charge_id)
                              .with_for_update()).first()
        first = conn.execute(select(SandboxRefund).where(SandboxRefund.idempotency_key == key)).first()
        if first is not None:
            if (first.charge_id, first.amount_minor) != (charge_id, amount_minor):
                return IdempotencyMismatch("this idempotency key was used for another refund",
                                           "idempotency_key_reused")
            return Refund(first.id, first.charge_id, first.amount_minor)
        if charge is None or charge.status != "succeeded":
            return PaymentRefused("there is no successful charge to refund", "invalid_charge")
        refunded = conn.scalar(select(func.coalesce(func.sum(SandboxRefund.amount_minor), 0))
                               .where(SandboxRefund.charge_id == charge_id)) or 0
        if refunded + amount_minor > charge.amount_minor:
            return PaymentRefused("the refund exceeds what is left of the charge", "amount_too_large")
        refund = Refund(_id("re"), charge_id, amount_minor)
        conn.execute(insert(SandboxRefund).values(id=refund.id, idempotency_key=key, charge_id=charge_id,
                                                  amount_minor=amount_minor))
        return refund


def _replayed(first: Row[Any], token: str, amount_minor: int, currency: str,
              behaviour: str | None) -> Charge | GatewayError:
    """The answer to a key already used: the first charge, or the first refusal (or, for the
    card whose answers are all lost, no answer again)."""
    if (first.token, first.amount_minor, first.currency) != (token, amount_minor, currency):
        return IdempotencyMismatch("this idempotency key was used for another charge",
                                   "idempotency_key_reused")
    if behaviour == "answer_lost":
        return OutcomeUnknown(ANSWER_LOST, "timeout")
    if first.status == "declined":
        code = first.decline_code or "card_declined"
        reason = next((r for c, r in _REFUSALS.values() if c == code), "the card was declined")
        return PaymentRefused(reason, code)
    return Charge(first.id, first.amount_minor, first.currency)
