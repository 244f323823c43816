"""The sandbox gateway behaves like a card processor: test cards, its own ledger written
outside the caller's transaction, idempotency keys honoured; and a purchase charged by a
worker that died before its commit is not charged twice."""
from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.messaging import handling
from domain.messaging.contracts.purchases import ChargePurchaseV1
from domain.messaging.handling import HandlerContext
from domain.messaging.outbox import Envelope
from domain.messaging.tables import outbox
from domain.purchases import handlers
from domain.purchases import services as purchases
from domain.purchases.gateway import (
    GatewayUnavailable,
    IdempotencyMismatch,
    InvalidCard,
    OutcomeUnknown,
    PaymentRefused,
)
from domain.purchases.sandbox import TRANSIENT_FAILURES, SandboxGateway
from domain.purchases.services import PurchaseRequest
from tests.integration.purchases.helpers import (
    ANSWER_LOST,
    ANSWER_LOST_ONCE,
    APPROVE,
    DECLINE,
    INSUFFICIENT,
    TRANSIENT,
    UNAVAILABLE,
    Shop,
    sandbox_attempts,
    sandbox_charges,
)


@pytest.fixture(scope="module")
def gateway(settings: Settings) -> SandboxGateway:
    """The sandbox gateway on the session's management database."""
    return SandboxGateway(settings.database_url, settings.secret_key)


def _count(provider: DataProvider, sql: str, **params: Any) -> int:
    with provider.management() as session:
        return int(session.scalar(text(sql), params) or 0)


def test_only_test_cards_are_tokenised_and_never_stored(gateway: SandboxGateway,
                                                        provider: DataProvider) -> None:
    method = gateway.tokenize("4242 4242 4242 4242")
    assert (method.last4, method.brand) == ("4242", "visa") and method.token.startswith("pm_")
    assert gateway.tokenize(APPROVE).fingerprint == method.fingerprint
    assert gateway.tokenize(DECLINE).fingerprint != method.fingerprint
    with pytest.raises(InvalidCard):
        gateway.tokenize("5555555555554444")
    with provider.management() as session:
        stored = session.scalar(text("SELECT m::text FROM sandbox_payment_methods m WHERE token = :t"),
                                {"t": method.token})
    assert stored is not None and "4242424242424242" not in stored


def test_an_approved_charge_is_made_once_per_key(gateway: SandboxGateway, provider: DataProvider) -> None:
    token, key = gateway.tokenize(APPROVE).token, str(uuid.uuid4())
    first = gateway.charge(token, 1500, "EUR", idempotency_key=key)
    again = gateway.charge(token, 1500, "EUR", idempotency_key=key)
    assert first == again and first.amount_minor == 1500
    assert [(c.id, c.status) for c in sandbox_charges(provider, key)] == [(first.id, "succeeded")]
    assert sandbox_attempts(provider, key) == 2
    with pytest.raises(IdempotencyMismatch):
        gateway.charge(token, 1600, "EUR", idempotency_key=key)
    assert gateway.charge(token, 1500, "EUR", idempotency_key=str(uuid.uuid4())).id != first.id


@pytest.mark.parametrize(("card", "code"), [(DECLINE, "card_declined"), (INSUFFICIENT, "insufficient_funds")],
                         ids=["declined", "insufficient funds"])
def test_a_refusal_is_recorded_and_given_again_for_the_same_key(
        gateway: SandboxGateway, provider: DataProvider, card: str, code: str) -> None:
    token, key = gateway.tokenize(card).token, str(uuid.uuid4())
    for _ in range(2):
        with pytest.raises(PaymentRefused) as refused:
            gateway.charge(token, 1500, "EUR", idempotency_key=key)
        assert refused.value.code == code
    assert [c.status for c in sandbox_charges(provider, key)] == ["declined"]


def test_the_transient_card_fails_twice_per_key_then_approves(gateway: SandboxGateway,
                                                               provider: DataProvider) -> None:
    token, key = gateway.tokenize(TRANSIENT).token, str(uuid.uuid4())
    for _ in range(TRANSIENT_FAILURES):
        with pytest.raises(GatewayUnavailable):
            gateway.charge(token, 700, "EUR", idempotency_key=key)
    assert sandbox_charges(provider, key) == []
    charge = gateway.charge(token, 700, "EUR", idempotency_key=key)
    assert [c.id for c in sandbox_charges(provider, key)] == [charge.id]
    with pytest.raises(GatewayUnavailable):  # another key starts over
        gateway.charge(token, 700, "EUR", idempotency_key=str(uuid.uuid4()))


def test_the_unavailable_card_never_gets_through(gateway: SandboxGateway, provider: DataProvider) -> None:
    token, key = gateway.tokenize(UNAVAILABLE).token, str(uuid.uuid4())
    for _ in range(6):
        with pytest.raises(GatewayUnavailable):
            gateway.charge(token, 700, "EUR", idempotency_key=key)
    assert sandbox_charges(provider, key) == [] and sandbox_attempts(provider, key) == 6


def test_a_charge_whose_answer_is_lost_is_made_and_answered_when_asked_again(
        gateway: SandboxGateway, provider: DataProvider) -> None:
    token, key = gateway.tokenize(ANSWER_LOST_ONCE).token, str(uuid.uuid4())
    with pytest.raises(OutcomeUnknown):
        gateway.charge(token, 700, "EUR", idempotency_key=key)
    [made] = sandbox_charges(provider, key)  # made, though its answer never arrived
    assert made.status == "succeeded"
    assert gateway.charge(token, 700, "EUR", idempotency_key=key).id == made.id  # the same key answers
    assert [c.id for c in sandbox_charges(provider, key)] == [made.id]


def test_a_charge_whose_answers_are_all_lost_is_made_once(gateway: SandboxGateway,
                                                          provider: DataProvider) -> None:
    token, key = gateway.tokenize(ANSWER_LOST).token, str(uuid.uuid4())
    for _ in range(4):
        with pytest.raises(OutcomeUnknown):
            gateway.charge(token, 700, "EUR", idempotency_key=key)
    assert [c.status for c in sandbox_charges(provider, key)] == ["succeeded"]
    assert sandbox_attempts(provider, key) == 4


def test_concurrent_charges_with_one_key_make_one_charge(gateway: SandboxGateway,
                                                         provider: DataProvider) -> None:
    token, key = gateway.tokenize(APPROVE).token, str(uuid.uuid4())
    barrier, ids = threading.Barrier(6), []

    def charge() -> None:
        barrier.wait()
        ids.append(gateway.charge(token, 2500, "EUR", idempotency_key=key).id)

    threads = [threading.Thread(target=charge) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(ids) == 6 and len(set(ids)) == 1
    assert len(sandbox_charges(provider, key)) == 1


def test_refunds_are_idempotent_and_never_exceed_the_charge(gateway: SandboxGateway,
                                                            provider: DataProvider) -> None:
    token = gateway.tokenize(APPROVE).token
    charge = gateway.charge(token, 3000, "EUR", idempotency_key=str(uuid.uuid4()))
    key = str(uuid.uuid4())
    first = gateway.refund(charge.id, 3000, idempotency_key=key)
    assert gateway.refund(charge.id, 3000, idempotency_key=key) == first
    with pytest.raises(PaymentRefused):
        gateway.refund(charge.id, 1, idempotency_key=str(uuid.uuid4()))
    with pytest.raises(PaymentRefused):
        gateway.refund("ch_sb_unknown", 1, idempotency_key=str(uuid.uuid4()))
    assert _count(provider, "SELECT count(*) FROM sandbox_refunds WHERE charge_id = :c", c=charge.id) == 1


def test_the_ledger_is_written_outside_the_callers_transaction(gateway: SandboxGateway,
                                                               provider: DataProvider) -> None:
    token, key = gateway.tokenize(APPROVE).token, str(uuid.uuid4())
    with provider.management() as session:
        session.execute(text("SELECT 1"))  # the caller's transaction is open ...
        charge = gateway.charge(token, 1200, "EUR", idempotency_key=key)
        session.rollback()  # ... and rolled back: the processor's record stays
    assert [c.id for c in sandbox_charges(provider, key)] == [charge.id]


def _recorded_purchase(provider: DataProvider, gateway: SandboxGateway, shop: Shop) -> Envelope:
    """A purchase recorded by the request's service (committed, never published: no worker of
    the suite may take it), and its charge delivery as a worker receives it."""
    body = shop.body()
    with provider.management() as session:
        recorded = purchases.request_purchase(
            session, gateway, PurchaseRequest(body["product_code"], body["amount_minor"], body["currency"],
                                              body["card_number"]),
            tenant_id=shop.tenant.id, buyer_user_id=shop.tenant.member("admin").user_id,
            idempotency_key=str(uuid.uuid4()), correlation_id=None)
        session.commit()
    with provider.management() as session:
        row = session.execute(outbox.select().where(
            outbox.c.type == ChargePurchaseV1.message_type,
            outbox.c.payload["purchase_id"].astext == str(recorded.purchase_id))).mappings().one()
    return Envelope(id=str(row["id"]), event_id=str(row["event_id"]), type=row["type"],
                    version=row["version"], handler=row["handler"], payload=row["payload"],
                    origin="management", tenant_id=str(row["tenant_id"]),
                    correlation_id=row["correlation_id"])


def test_a_worker_that_dies_after_the_charge_and_before_its_commit_charges_once(
        api: FlaskClient, provider: DataProvider, gateway: SandboxGateway, shop: Shop) -> None:
    envelope = _recorded_purchase(provider, gateway, shop)
    message = ChargePurchaseV1.model_validate(envelope.payload)
    ports = {"gateway": gateway}
    # The first run charges at the gateway, then its transaction never commits (the worker died).
    with provider.management() as session:
        handlers.charge_purchase(HandlerContext(session, envelope, provider, ports), message)
        session.rollback()
    first = sandbox_charges(provider, message.purchase_id)
    assert [c.status for c in first] == ["succeeded"]
    # The redelivery runs the handler for real: same key, same charge, and the purchase completes.
    outcome = handling.handle(provider, envelope, ChargePurchaseV1, "management", handlers.charge_purchase,
                              ports=ports)
    assert not outcome.duplicate
    assert sandbox_charges(provider, message.purchase_id) == [
        type(first[0])(first[0].id, "succeeded", first[0].amount_minor, 2)]
    status = api.get(f"/api/v1/purchases/{message.purchase_id}", headers=shop.admin).json
    assert status["status"] == "completed"
    # A third copy finds the inbox row and does nothing at all.
    assert handling.handle(provider, envelope, ChargePurchaseV1, "management", handlers.charge_purchase,
                           ports=ports).duplicate
    assert sandbox_attempts(provider, message.purchase_id) == 2
