"""The purchases handlers against a fake gateway and an in-memory session: what each gateway
answer does to the purchase and which event it raises."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from domain.db.provider import DataProvider
from domain.errors import Transient
from domain.messaging.contracts.purchases import ChargePurchaseV1, RefundPurchaseV1
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from domain.purchases import handlers
from domain.purchases.gateway import (
    Charge,
    GatewayError,
    GatewayUnavailable,
    OutcomeUnknown,
    PaymentMethod,
    PaymentRefused,
    Refund,
)
from domain.purchases.models import Purchase


@dataclass
class FakeGateway:
    """Answers each charge with what ``answer`` holds; remembers every call."""

    answer: GatewayError | None = None
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def tokenize(self, card_number: str) -> PaymentMethod:
        return PaymentMethod("pm_fake", "fp", card_number[-4:], "visa")

    def charge(self, token: str, amount_minor: int, currency: str, *, idempotency_key: str) -> Charge:
        self.calls.append(("charge", idempotency_key, amount_minor))
        if self.answer is not None:
            raise self.answer
        return Charge(f"ch_{idempotency_key}", amount_minor, currency)

    def refund(self, charge_id: str, amount_minor: int, *, idempotency_key: str) -> Refund:
        self.calls.append(("refund", idempotency_key, amount_minor))
        if self.answer is not None:
            raise self.answer
        return Refund(f"re_{idempotency_key}", charge_id, amount_minor)


@dataclass
class FakeSession:
    """The little of a Session the handlers and the outbox use; rows live in memory."""

    rows: dict[uuid.UUID, Purchase]
    info: dict[str, Any] = field(default_factory=lambda: {"db_key": "management", "lease_seconds": 60})
    written: list[dict[str, Any]] = field(default_factory=list)

    def get(self, model: type, key: uuid.UUID, with_for_update: bool = False) -> Purchase | None:
        assert model is Purchase and with_for_update
        return self.rows.get(key)

    def execute(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        self.written.extend(rows)


def _purchase(status: str = "pending") -> Purchase:
    return Purchase(id=uuid.uuid4(), tenant_id=uuid.uuid4(), buyer_user_id=uuid.uuid4(),
                    product_id=uuid.uuid4(), product_code="extra-seats", product_name="Extra seats",
                    product_kind="addon", plan=None, amount_minor=1500, currency="EUR",
                    idempotency_key="k", request_hash="h", payment_token="pm_fake", card_last4="4242",
                    status=status, charge_id="ch_first" if status != "pending" else None)


def _run(handler: Any, purchase: Purchase, gateway: FakeGateway, *, last_attempt: bool = False,
         message: Any = None) -> FakeSession:
    session = FakeSession({purchase.id: purchase})
    envelope = Envelope(id=str(uuid.uuid4()), event_id=str(uuid.uuid4()), type="t", version=1,
                        handler="purchases.charge_purchase", payload={}, origin="management",
                        tenant_id=str(purchase.tenant_id), correlation_id="corr")
    ctx = HandlerContext(cast(Any, session), envelope, cast(DataProvider, None), {"gateway": gateway},
                         last_attempt=last_attempt)
    handler(ctx, message or ChargePurchaseV1(purchase_id=purchase.id, tenant_id=purchase.tenant_id))
    return session


def _events(session: FakeSession) -> set[str]:
    return {row["type"] for row in session.written}


def test_an_approved_charge_completes_the_purchase_keyed_by_its_id() -> None:
    purchase, gateway = _purchase(), FakeGateway()
    session = _run(handlers.charge_purchase, purchase, gateway)
    assert gateway.calls == [("charge", str(purchase.id), 1500)]
    assert (purchase.status, purchase.charge_id) == ("completed", f"ch_{purchase.id}")
    assert _events(session) == {"purchases.PurchaseCompleted"}
    assert {row["handler"] for row in session.written} == {
        "notifications.record_purchase_receipt", "tenancy.apply_plan", "billing.record_charge"}


@pytest.mark.parametrize("reason", ["the card was declined", "insufficient funds on the card"])
def test_a_refusal_fails_the_purchase_at_once_with_the_reason(reason: str) -> None:
    purchase = _purchase()
    session = _run(handlers.charge_purchase, purchase, FakeGateway(PaymentRefused(reason, "declined")))
    assert (purchase.status, purchase.failure_reason) == ("failed", reason)
    assert _events(session) == {"purchases.PurchaseFailed"}
    assert session.written[0]["payload"]["reason"] == reason


def test_an_unavailable_gateway_is_retried_until_the_last_attempt() -> None:
    purchase = _purchase()
    with pytest.raises(Transient):
        _run(handlers.charge_purchase, purchase, FakeGateway(GatewayUnavailable("timeout")))
    assert purchase.status == "pending"


def test_on_the_last_attempt_an_unavailable_gateway_fails_the_purchase() -> None:
    purchase = _purchase()
    session = _run(handlers.charge_purchase, purchase, FakeGateway(GatewayUnavailable("timeout")),
                   last_attempt=True)
    assert (purchase.status, purchase.failure_reason) == ("failed", "payment gateway unavailable")
    assert _events(session) == {"purchases.PurchaseFailed"}


def test_a_charge_whose_answer_was_lost_never_fails_the_purchase() -> None:
    # It may have been made: the purchase waits, and the charge is asked for again with the
    # same key (by the relay once the retries are spent), never concluded failed.
    purchase = _purchase()
    with pytest.raises(Transient):
        _run(handlers.charge_purchase, purchase, FakeGateway(OutcomeUnknown("timeout")), last_attempt=True)
    assert (purchase.status, purchase.failure_reason) == ("pending", None)


@pytest.mark.parametrize("status", ["completed", "failed", "refund_requested", "refunded"])
def test_a_purchase_no_longer_pending_is_not_charged_again(status: str) -> None:
    purchase, gateway = _purchase(status), FakeGateway()
    session = _run(handlers.charge_purchase, purchase, gateway)
    assert gateway.calls == [] and session.written == [] and purchase.status == status


def test_a_refund_uses_its_own_key_and_announces_the_refund() -> None:
    purchase, gateway = _purchase("refund_requested"), FakeGateway()
    message = RefundPurchaseV1(purchase_id=purchase.id, tenant_id=purchase.tenant_id, reason="asked")
    session = _run(handlers.refund_purchase, purchase, gateway, message=message)
    assert gateway.calls == [("refund", f"{purchase.id}:refund", 1500)]
    assert (purchase.status, purchase.refund_id) == ("refunded", f"re_{purchase.id}:refund")
    assert _events(session) == {"purchases.PurchaseRefunded"}


def test_a_refund_is_never_given_up_while_the_gateway_is_down() -> None:
    purchase = _purchase("refund_requested")
    message = RefundPurchaseV1(purchase_id=purchase.id, tenant_id=purchase.tenant_id, reason="asked")
    with pytest.raises(Transient):
        _run(handlers.refund_purchase, purchase, FakeGateway(GatewayUnavailable("down")),
             last_attempt=True, message=message)
    assert purchase.status == "refund_requested"


def test_a_refused_refund_leaves_the_purchase_completed_with_the_reason_and_is_not_retried() -> None:
    purchase = _purchase("refund_requested")
    message = RefundPurchaseV1(purchase_id=purchase.id, tenant_id=purchase.tenant_id, reason="asked")
    refusal = PaymentRefused("the refund exceeds what is left of the charge", "amount_too_large")
    session = _run(handlers.refund_purchase, purchase, FakeGateway(refusal), message=message)
    assert (purchase.status, purchase.failure_reason) == (
        "completed", "the refund was refused: the refund exceeds what is left of the charge")
    assert session.written == []  # nothing announced: nothing was refunded


def test_a_message_naming_another_tenant_does_nothing() -> None:
    purchase, gateway = _purchase(), FakeGateway()
    message = ChargePurchaseV1(purchase_id=purchase.id, tenant_id=uuid.uuid4())
    session = _run(handlers.charge_purchase, purchase, gateway, message=message)
    assert gateway.calls == [] and session.written == [] and purchase.status == "pending"


def test_a_refund_asked_again_after_a_refusal_goes_under_a_key_of_its_own() -> None:
    # A gateway answers a key it has seen with its first answer: asked again under the first
    # key, the refund would be refused again whatever was settled at the gateway since.
    purchase = _purchase("refund_requested")
    message = RefundPurchaseV1(purchase_id=purchase.id, tenant_id=purchase.tenant_id, reason="asked")
    refused = FakeGateway(PaymentRefused("disputed", "charge_disputed"))
    _run(handlers.refund_purchase, purchase, refused, message=message)
    assert refused.calls == [("refund", f"{purchase.id}:refund", 1500)]
    assert purchase.status == "completed"
    purchase.status, purchase.refund_requested_at = "refund_requested", datetime(2026, 12, 8, tzinfo=UTC)
    again, redelivered = FakeGateway(GatewayUnavailable("down")), FakeGateway()
    with pytest.raises(Transient):
        _run(handlers.refund_purchase, purchase, again, message=message)
    _run(handlers.refund_purchase, purchase, redelivered, message=message)  # the same request, redelivered
    key = f"{purchase.id}:refund:2026-12-08T00:00:00+00:00"
    assert again.calls == redelivered.calls == [("refund", key, 1500)]
    assert (purchase.status, purchase.failure_reason) == ("refunded", None)
