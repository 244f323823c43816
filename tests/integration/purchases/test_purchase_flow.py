"""A purchase through real workers on a stack of their own: the ``purchases`` worker charges
it at the sandbox gateway, the ``default`` pool books it in the billing ledger, the
``notifications`` worker tells the buyer. Every test card's outcome, retries with one charge,
a refund, the status page following it all, and the promotion notice."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from domain.db.provider import DataProvider
from domain.messaging import outbox
from domain.messaging.contracts.purchases import ChargePurchaseV1
from domain.messaging.contracts.tenancy import TenantPromotedV1
from domain.messaging.outbox import Envelope
from domain.purchases.sandbox import SandboxGateway
from tests.integration.messaging.helpers import inbox_has
from tests.integration.purchases.helpers import (
    ANSWER_LOST,
    ANSWER_LOST_ONCE,
    APPROVE,
    CHECKOUT,
    DECLINE,
    INSUFFICIENT,
    TRANSIENT,
    UNAVAILABLE,
    Payments,
    Shop,
    add_product,
    browser_of,
    buy,
    form_of,
    open_shop,
    purchase_of,
    sandbox_attempts,
    sandbox_charges,
)
from tests.integration.web.helpers import assert_refused
from tests.support import tenants
from tests.support.tenants import bearer
from tests.support.waiting import wait_for
from workers.publisher import publish

# The task base retries a transient error 4 times: 5 attempts, 1+2+4+8 times TASK_RETRY_SECONDS
# apart (plus jitter): 0.25 s in this suite (tests/integration/purchases/conftest.py).
ATTEMPTS = 5
CARDS = {"approve": APPROVE, "decline": DECLINE, "insufficient": INSUFFICIENT, "transient": TRANSIENT,
         "unavailable": UNAVAILABLE}


@pytest.fixture(scope="module")
def app(payments: Payments) -> Flask:
    """The payment stack's web app: this module's purchases are charged by its workers."""
    return payments.private.app


@pytest.fixture(scope="module")
def provider(payments: Payments) -> DataProvider:
    """The payment stack's data provider."""
    return payments.private.provider


@pytest.fixture(scope="module")
def bought(api: FlaskClient, shop: Shop) -> dict[str, str]:
    """One purchase per test card, all submitted at once (their retries overlap)."""
    ids = {}
    for name, card in CARDS.items():
        response = buy(api, shop, shop.body(card_number=card))
        assert response.status_code == 202, response.json
        ids[name] = response.json["id"]
    return ids


def outcome(api: FlaskClient, shop: Shop, purchase_id: str, timeout: float = 60) -> dict[str, Any]:
    """The purchase once it reached a final state."""
    def final() -> dict[str, Any] | None:
        status: dict[str, Any] = api.get(f"/api/v1/purchases/{purchase_id}", headers=shop.admin).json
        return status if status["final"] else None

    return wait_for(final, timeout=timeout, message=f"purchase {purchase_id} to finish")


def notices(api: FlaskClient, shop: Shop) -> list[dict[str, Any]]:
    """The admin's notices."""
    items: list[dict[str, Any]] = api.get("/api/v1/notifications/notices", headers=shop.admin).json["items"]
    return items


def notice_about(api: FlaskClient, shop: Shop, title: str, saying: str = "") -> dict[str, Any]:
    """Wait for the admin's notice titled ``title`` whose body says ``saying``."""
    return wait_for(lambda: next((n for n in notices(api, shop)
                                  if n["title"] == title and saying in n["body"]), None),
                    timeout=60, message=f"the notice {title!r} saying {saying!r}")


def ledger(api: FlaskClient, shop: Shop) -> dict[str, Any]:
    """The shop tenant's billing ledger, as an operator reads it."""
    response = api.get(f"/api/v1/operations/tenants/{shop.tenant.id}/ledger",
                       headers=bearer(shop.operator_token))
    assert response.status_code == 200
    body: dict[str, Any] = response.json
    return body


def entries_of(api: FlaskClient, shop: Shop, purchase_id: str, count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` ledger entries of the purchase."""
    return wait_for(lambda: len(found := [e for e in ledger(api, shop)["entries"]
                                          if e["purchase_id"] == purchase_id]) == count and found,
                    timeout=60, message=f"{count} ledger entries of {purchase_id}")


def test_an_approved_purchase_completes_is_booked_and_receipted(
        api: FlaskClient, provider: DataProvider, shop: Shop, bought: dict[str, str]) -> None:
    purchase_id = bought["approve"]
    status = outcome(api, shop, purchase_id)
    assert (status["status"], status["failure_reason"]) == ("completed", None)
    [charge] = sandbox_charges(provider, purchase_id)
    assert (charge.status, charge.amount_minor, charge.attempts) == ("succeeded", shop.addon.price_minor, 1)
    [entry] = entries_of(api, shop, purchase_id, 1)
    assert (entry["kind"], entry["amount_minor"], entry["currency"], entry["reference"]) == (
        "charge", shop.addon.price_minor, "EUR", charge.id)
    receipt = notice_about(api, shop, f"Receipt: {shop.addon.name}")
    assert "15.00 EUR" in receipt["body"] and receipt["category"] == "billing"


@pytest.mark.parametrize(("card", "reason"), [("decline", "the card was declined"),
                                              ("insufficient", "insufficient funds on the card")])
def test_a_refused_card_fails_at_once_with_the_reason(api: FlaskClient, provider: DataProvider, shop: Shop,
                                                       bought: dict[str, str], *, card: str,
                                                       reason: str) -> None:
    status = outcome(api, shop, bought[card])
    assert (status["status"], status["failure_reason"]) == ("failed", reason)
    assert sandbox_attempts(provider, bought[card]) == 1  # not retried
    assert [c.status for c in sandbox_charges(provider, bought[card])] == ["declined"]
    failure = notice_about(api, shop, f"Payment failed: {shop.addon.name}", reason)
    assert failure["category"] == "billing"


def test_a_transient_error_is_retried_with_the_same_key_and_charges_once(
        api: FlaskClient, provider: DataProvider, shop: Shop, bought: dict[str, str]) -> None:
    status = outcome(api, shop, bought["transient"])
    assert status["status"] == "completed"
    [charge] = sandbox_charges(provider, bought["transient"])
    assert (charge.status, charge.attempts) == ("succeeded", 3)  # two network errors, then approved
    entries_of(api, shop, bought["transient"], 1)


def test_a_gateway_that_stays_down_fails_the_purchase_after_the_last_retry(
        api: FlaskClient, provider: DataProvider, shop: Shop, bought: dict[str, str]) -> None:
    status = outcome(api, shop, bought["unavailable"], timeout=90)
    assert (status["status"], status["failure_reason"]) == ("failed", "payment gateway unavailable")
    assert sandbox_attempts(provider, bought["unavailable"]) == ATTEMPTS
    assert sandbox_charges(provider, bought["unavailable"]) == []


def test_a_charge_whose_answer_was_lost_is_asked_again_and_completes_once(
        api: FlaskClient, provider: DataProvider) -> None:
    shop = open_shop(api, provider)
    purchase_id = buy(api, shop, shop.body(card_number=ANSWER_LOST_ONCE)).json["id"]
    assert outcome(api, shop, purchase_id)["status"] == "completed"
    [charge] = sandbox_charges(provider, purchase_id)
    assert (charge.status, charge.attempts) == ("succeeded", 2)  # made, its answer lost, then answered


def _charge_error(provider: DataProvider, purchase_id: str) -> str | None:
    """The last error its charge command's delivery recorded (once its retries were spent)."""
    with provider.management() as session:
        return session.scalar(text("SELECT last_error FROM outbox WHERE type = :type"
                                   " AND payload->>'purchase_id' = :id"),
                              {"type": ChargePurchaseV1.message_type, "id": purchase_id})


def test_a_charge_whose_answers_are_all_lost_leaves_the_purchase_pending_never_failed(
        api: FlaskClient, provider: DataProvider) -> None:
    # The charge may have been made (here it was): failing the purchase would keep the money
    # and give nothing. It stays pending, asked again with the same key, charged once.
    shop = open_shop(api, provider)
    purchase_id = buy(api, shop, shop.body(card_number=ANSWER_LOST)).json["id"]
    error = wait_for(lambda: _charge_error(provider, purchase_id), timeout=90,
                     message="the charge's retries to be spent")
    assert "answer was lost" in error
    assert sandbox_attempts(provider, purchase_id) >= ATTEMPTS
    status = api.get(f"/api/v1/purchases/{purchase_id}", headers=shop.admin).json
    assert (status["status"], status["final"], status["failure_reason"]) == ("pending", False, None)
    assert [c.status for c in sandbox_charges(provider, purchase_id)] == ["succeeded"]


def test_a_refund_goes_through_the_gateway_once_and_is_booked(
        api: FlaskClient, provider: DataProvider, shop: Shop, bought: dict[str, str]) -> None:
    purchase_id = bought["approve"]
    assert outcome(api, shop, purchase_id)["status"] == "completed"
    operator = bearer(shop.operator_token)
    url = f"/api/v1/operations/purchases/{purchase_id}/refund"
    response = api.post(url, json={"reason": "bought by mistake"}, headers=operator)
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/v1/operations/purchases/{purchase_id}"
    assert_refused(api.post(url, json={"reason": "twice"}, headers=operator), 409, "purchase_id")
    status = outcome(api, shop, purchase_id)
    assert (status["status"], status["refund_reason"]) == ("refunded", "bought by mistake")
    charge, refund = entries_of(api, shop, purchase_id, 2)
    assert (charge["kind"], refund["kind"]) == ("charge", "refund")
    assert refund["amount_minor"] == -charge["amount_minor"]
    notice_about(api, shop, f"Refunded: {shop.addon.name}")
    with provider.management() as session:
        refunds = session.scalar(text("SELECT count(*) FROM sandbox_refunds WHERE idempotency_key = :k"),
                                 {"k": f"{purchase_id}:refund"})
    assert refunds == 1
    assert_refused(api.post(url, json={"reason": "again"}, headers=operator), 409, "purchase_id")
    assert_refused(api.post(f"/api/v1/operations/purchases/{bought['decline']}/refund",
                            json={"reason": "failed anyway"}, headers=operator), 409, "purchase_id")


def _handled(provider: DataProvider, handler: str, purchase_id: str) -> Any:
    """The purchase's delivery to ``handler`` (completed_at, last_error) once it completed or failed."""
    with provider.management() as session:
        row = session.execute(text("SELECT completed_at, last_error FROM outbox WHERE handler = :handler"
                                   " AND payload->>'purchase_id' = :id"),
                              {"handler": handler, "id": purchase_id}).first()
    return row if row is not None and (row.completed_at or row.last_error) else None


def test_a_free_purchase_is_refunded_and_its_refund_books_nothing(api: FlaskClient,
                                                                  provider: DataProvider) -> None:
    # A refund is booked negative and a ledger entry's sign follows its kind: a refund of
    # nothing moved no money. Its delivery failed on that check, again at every re-send.
    shop = open_shop(api, provider)
    free = add_product(provider, price_minor=0)
    purchase_id = buy(api, shop, shop.body(free)).json["id"]
    assert outcome(api, shop, purchase_id)["status"] == "completed"
    [charge] = entries_of(api, shop, purchase_id, 1)
    assert (charge["kind"], charge["amount_minor"]) == ("charge", 0)
    response = api.post(f"/api/v1/operations/purchases/{purchase_id}/refund", json={"reason": "given twice"},
                        headers=bearer(shop.operator_token))
    assert response.status_code == 202
    assert outcome(api, shop, purchase_id)["status"] == "refunded"
    booking = wait_for(lambda: _handled(provider, "billing.record_refund", purchase_id), timeout=60,
                       message="the refund's booking to be handled")
    assert booking.last_error is None and booking.completed_at is not None
    body = ledger(api, shop)
    assert [(e["purchase_id"], e["kind"], e["amount_minor"]) for e in body["entries"]] == [
        (purchase_id, "charge", 0)]
    assert body["balance"] == [{"currency": "EUR", "amount_minor": 0}]


def test_a_refund_the_gateway_refuses_leaves_the_purchase_completed_with_the_reason(
        api: FlaskClient, provider: DataProvider) -> None:
    # Refunded at the gateway already (by hand, on its dashboard): ours exceeds what is left,
    # a refusal every re-send would get again. It was re-sent until dead, refund_requested.
    shop = open_shop(api, provider)
    purchase_id = buy(api, shop, shop.body()).json["id"]
    assert outcome(api, shop, purchase_id)["status"] == "completed"
    [charge] = sandbox_charges(provider, purchase_id)
    settings = provider.settings
    SandboxGateway(settings.database_url, settings.secret_key).refund(
        charge.id, charge.amount_minor, idempotency_key=f"dashboard-{purchase_id}")
    operator = bearer(shop.operator_token)
    url = f"/api/v1/operations/purchases/{purchase_id}/refund"
    assert api.post(url, json={"reason": "asked twice"}, headers=operator).status_code == 202
    delivery = wait_for(lambda: _handled(provider, "purchases.refund_purchase", purchase_id), timeout=60,
                        message="the refund command to be handled")
    assert delivery.last_error is None and delivery.completed_at is not None
    shown = api.get(f"/api/v1/operations/purchases/{purchase_id}", headers=operator).json
    assert (shown["status"], shown["failure_reason"]) == (
        "completed", "the refund was refused: the refund exceeds what is left of the charge")
    with provider.management() as session:  # nothing was refunded: nothing announced
        assert session.scalar(text("SELECT count(*) FROM outbox WHERE type = 'purchases.PurchaseRefunded'"
                                   " AND payload->>'purchase_id' = :id"), {"id": purchase_id}) == 0
    assert api.post(url, json={"reason": "settled"}, headers=operator).status_code == 202  # may ask again


def test_the_ledger_balance_is_charges_less_refunds_per_currency(api: FlaskClient,
                                                                 provider: DataProvider) -> None:
    shop = open_shop(api, provider)
    euros, pounds = add_product(provider, price_minor=1500), add_product(provider, price_minor=700,
                                                                          currency="GBP")
    ids = [buy(api, shop, shop.body(product)).json["id"] for product in (euros, pounds)]
    assert [outcome(api, shop, i)["status"] for i in ids] == ["completed", "completed"]
    response = api.post(f"/api/v1/operations/purchases/{ids[1]}/refund", json={"reason": "duplicate"},
                        headers=bearer(shop.operator_token))
    assert response.status_code == 202
    entries_of(api, shop, ids[1], 2)
    body = ledger(api, shop)
    assert [(e["purchase_id"], e["kind"], e["amount_minor"], e["currency"]) for e in body["entries"]] == [
        (ids[0], "charge", 1500, "EUR"), (ids[1], "charge", 700, "GBP"), (ids[1], "refund", -700, "GBP")]
    assert body["balance"] == [{"currency": "EUR", "amount_minor": 1500},
                               {"currency": "GBP", "amount_minor": 0}]


def test_the_status_page_follows_the_purchase_to_its_outcome(app: Flask, provider: DataProvider) -> None:
    shop = open_shop(app.test_client(), provider)
    browser = browser_of(app, shop)
    declined = purchase_of(browser.post(CHECKOUT, data=form_of(browser, shop.addon.code, DECLINE)))
    paid = purchase_of(browser.post(CHECKOUT, data=form_of(browser, shop.addon.code, APPROVE)))

    def page_when(purchase_id: str, status: str) -> str | None:
        page = browser.get(f"/purchases/{purchase_id}").get_data(as_text=True)
        return page if f'data-status="{status}"' in page else None

    failed = wait_for(lambda: page_when(declined, "failed"), timeout=60, message="the failure shown")
    assert "The payment failed: the card was declined" in failed
    completed = wait_for(lambda: page_when(paid, "completed"), timeout=60, message="the payment shown")
    assert "Paid." in completed and "ending in 4242" in completed
    assert 'http-equiv="refresh"' not in completed + failed  # final: no more refreshing
    checkout = browser.get(CHECKOUT).get_data(as_text=True)
    assert f'data-purchase="{declined}"' in checkout and f'data-purchase="{paid}"' in checkout
    refund = app.test_client().post(f"/api/v1/operations/purchases/{paid}/refund", json={"reason": "a test"},
                                    headers=bearer(shop.operator_token))
    assert refund.status_code == 202
    refunded = wait_for(lambda: page_when(paid, "refunded"), timeout=60, message="the refund shown")
    assert "Refunded (a test)." in refunded and 'http-equiv="refresh"' not in refunded


def announce(app: Flask, provider: DataProvider, message: TenantPromotedV1) -> Envelope:
    """Record the event in the management outbox, commit, and publish it (as tenancy does)."""
    with provider.management() as session:
        [envelope] = outbox.record(session, message, tenant_id=message.tenant_id,
                                   correlation_id="promotion")
        outbox.discard_pending(session)
        session.commit()
    assert publish(app.extensions["allotment.celery"], [envelope]) == 1
    return envelope


def test_the_promotion_notice_goes_to_whoever_asked_and_only_then(app: Flask,
                                                                   provider: DataProvider) -> None:
    tenant = tenants.create_tenant(provider, ("owner", "admin"), prefix="promoted")
    asked_by = tenant.member("admin")
    quiet = announce(app, provider, TenantPromotedV1(promotion_id=uuid.uuid4(), tenant_id=tenant.id,
                                                     tenant_name=tenant.name, rows=7))
    told = announce(app, provider, TenantPromotedV1(promotion_id=uuid.uuid4(), tenant_id=tenant.id,
                                                    tenant_name=tenant.name, rows=42,
                                                    requested_by=asked_by.user_id))
    for envelope in (quiet, told):
        wait_for(lambda e=envelope: inbox_has(provider, "trial", e.id), timeout=60,
                 message="the notifications worker to handle the promotion")
    client = app.test_client()
    notices = client.get("/api/v1/notifications/notices",
                         headers=bearer(tenants.access_token(client, asked_by, tenant.slug))).json["items"]
    assert [(n["category"], n["title"]) for n in notices] == [
        ("tenancy", f"{tenant.name} has its own database")]
    assert "42 rows" in notices[0]["body"]
    owner = client.get("/api/v1/notifications/notices",
                       headers=bearer(tenants.access_token(client, tenant.member("owner"), tenant.slug)))
    assert owner.json["items"] == []
