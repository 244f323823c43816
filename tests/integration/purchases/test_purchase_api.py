"""The purchase API: every bad input refused with the field and nothing written, idempotency
(repeats, changed bodies, concurrent duplicates), and one tenant never reaching another's."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from config.settings import Settings
from domain.db.provider import DataProvider
from domain.purchases.sandbox import SandboxGateway
from tests.integration.purchases.helpers import (
    DECLINE,
    PURCHASES,
    UNAVAILABLE,
    Shop,
    buy,
    open_shop,
    written,
)
from tests.integration.web.helpers import assert_refused
from tests.support import refs, tenants
from tests.support.apps import web_app
from tests.support.tenants import bearer

Body = dict[str, Any]
Change = Callable[[Shop, Body], Body]


def with_(**changes: Any) -> Change:
    """The valid body with ``changes``."""
    return lambda shop, body: {**body, **changes}


def without(field: str) -> Change:
    """The valid body without ``field``."""
    return lambda shop, body: {k: v for k, v in body.items() if k != field}


BAD_BODIES = [
    pytest.param(with_(product_code="no-such-product"), 422, "product_code", id="unknown product"),
    pytest.param(lambda s, b: {**b, "product_code": s.retired.code, "amount_minor": s.retired.price_minor},
                 422, "product_code", id="retired product"),
    pytest.param(lambda s, b: {**b, "amount_minor": b["amount_minor"] - 1}, 422, "amount_minor",
                 id="price lower than the catalogue's"),
    pytest.param(with_(amount_minor=0), 422, "amount_minor", id="price of zero"),
    pytest.param(with_(currency="USD"), 422, "currency", id="wrong currency"),
    pytest.param(with_(currency="XYZ"), 422, "currency", id="not an ISO currency we sell in"),
    pytest.param(with_(currency="eur"), 422, "currency", id="lower-case currency"),
    pytest.param(with_(card_number="4242424242424241"), 422, "card_number", id="card failing the Luhn check"),
    pytest.param(with_(card_number="4242-abcd-4242-4242"), 422, "card_number", id="letters in the card"),
    pytest.param(with_(card_number="4242"), 422, "card_number", id="card too short"),
    pytest.param(with_(card_number="5555555555554444"), 422, "card_number", id="not a sandbox test card"),
    pytest.param(with_(card_number=4242424242424242), 422, "card_number", id="card as a number"),
    pytest.param(with_(amount_minor="1500"), 422, "amount_minor", id="amount as a string"),
    pytest.param(with_(amount_minor=15.0), 422, "amount_minor", id="amount as a float"),
    pytest.param(with_(amount_minor=-1500), 422, "amount_minor", id="negative amount"),
    pytest.param(with_(amount_minor=True), 422, "amount_minor", id="amount as a boolean"),
    pytest.param(without("product_code"), 422, "product_code", id="missing product"),
    pytest.param(without("card_number"), 422, "card_number", id="missing card"),
    pytest.param(with_(coupon="FREE"), 422, "coupon", id="an unknown field"),
    pytest.param(with_(tenant_id="not-a-uuid"), 422, "tenant_id", id="malformed tenant id"),
    pytest.param(with_(product_code="Standard Plan"), 422, "product_code", id="product code not a code"),
]


@pytest.mark.parametrize(("change", "status", "field"), BAD_BODIES)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(
        api: FlaskClient, provider: DataProvider, shop: Shop, *, change: Change, status: int,
        field: str) -> None:
    request_id = refs.slug("req")
    before = written(provider, shop.tenant.id, request_id)
    response = buy(api, shop, change(shop, shop.body()), headers={"X-Request-Id": request_id})
    assert_refused(response, status, field)
    assert written(provider, shop.tenant.id, request_id) == before


@pytest.mark.parametrize(("key", "reason"), [
    (None, "required"), ("", "required"), ("k" * 256, "1 to 255"), ("caf\u00e9", "printable ASCII"),
    ("tab\tkey", "printable ASCII"),
], ids=["missing", "empty", "256 characters", "not ASCII", "a control character"])
def test_a_missing_or_malformed_idempotency_key_is_refused(
        api: FlaskClient, provider: DataProvider, shop: Shop, key: str | None, reason: str) -> None:
    request_id = refs.slug("req")
    before = written(provider, shop.tenant.id, request_id)
    headers = {**shop.admin, "X-Request-Id": request_id}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = assert_refused(api.post(PURCHASES, json=shop.body(), headers=headers), 400, "Idempotency-Key")
    assert reason in body["reason"]
    assert written(provider, shop.tenant.id, request_id) == before


def test_a_purchase_for_another_tenant_is_not_found_and_nothing_is_written(
        api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    other = open_shop(api, provider)
    before = (written(provider, shop.tenant.id), written(provider, other.tenant.id))
    assert_refused(buy(api, shop, shop.body(tenant_id=str(other.tenant.id))), 404, "tenant_id")
    # Without a key too: whose tenant it is is settled before anything else about the request.
    assert_refused(api.post(PURCHASES, json=shop.body(tenant_id=str(other.tenant.id)), headers=shop.admin),
                   404, "tenant_id")
    assert (written(provider, shop.tenant.id), written(provider, other.tenant.id)) == before


def test_naming_its_own_tenant_is_allowed(api: FlaskClient, shop: Shop) -> None:
    response = buy(api, shop, shop.body(tenant_id=str(shop.tenant.id)))
    assert response.status_code == 202, response.json


@pytest.mark.parametrize(("who", "status", "field"), [
    ("employee", 403, None), ("operator", 403, "tenant"), ("nobody", 401, "Authorization"),
], ids=["employee without purchases:create", "operator without a tenant", "no token"])
def test_only_a_buyer_of_the_tenant_may_buy(api: FlaskClient, provider: DataProvider, shop: Shop, *,
                                             who: str, status: int, field: str | None) -> None:
    token = {"employee": shop.tokens["employee"], "operator": shop.operator_token}.get(who)
    headers = {"Idempotency-Key": str(uuid.uuid4()), **(bearer(token) if token else {})}
    before = written(provider, shop.tenant.id)
    assert_refused(api.post(PURCHASES, json=shop.body(), headers=headers), status, field)
    assert written(provider, shop.tenant.id) == before


def test_a_purchase_is_recorded_pending_with_one_charge_command_and_a_status_url(
        api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    before = written(provider, shop.tenant.id)
    # A card whose gateway is down keeps it pending for 15 s at least, even if a worker runs.
    response = buy(api, shop, shop.body(card_number=UNAVAILABLE))
    assert response.status_code == 202
    assert response.headers["Location"] == response.json["status_url"]
    assert "Idempotent-Replayed" not in response.headers
    status = api.get(response.json["status_url"], headers=shop.admin)
    assert status.status_code == 200
    assert status.json["id"] == response.json["id"]
    assert {k: status.json[k] for k in ("status", "final", "product_code", "amount_minor", "currency",
                                        "card_last4", "failure_reason")} == {
        "status": "pending", "final": False, "product_code": shop.addon.code,
        "amount_minor": shop.addon.price_minor, "currency": "EUR", "card_last4": "0259",
        "failure_reason": None}
    after = written(provider, shop.tenant.id)
    assert (after.purchases - before.purchases, after.charges - before.charges) == (1, 1)


def test_the_card_number_is_never_stored(api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    response = buy(api, shop, shop.body(card_number="4242-4242-4242-4242"))
    assert response.status_code == 202
    with provider.management() as session:
        row = session.execute(text("SELECT p::text FROM purchases p WHERE id = :id"),
                              {"id": response.json["id"]}).scalar_one()
        sandbox = session.execute(text("SELECT string_agg(m::text, ',') FROM sandbox_payment_methods m"
                                       " JOIN purchases p ON p.payment_token = m.token WHERE p.id = :id"),
                                  {"id": response.json["id"]}).scalar_one()
    assert "4242424242424242" not in row and "4242-4242" not in row
    assert "4242424242424242" not in sandbox


# --- idempotency ----------------------------------------------------------------------------

def test_the_same_key_and_body_answer_with_the_same_purchase(
        api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    key, body = str(uuid.uuid4()), shop.body()
    before = written(provider, shop.tenant.id)
    first = buy(api, shop, body, key)
    again = buy(api, shop, body, key)
    # The card typed differently is the same card.
    spaced = buy(api, shop, {**body, "card_number": "4242-4242-4242-4242"}, key)
    assert first.status_code == again.status_code == spaced.status_code == 202
    assert first.json == again.json == spaced.json
    assert first.headers["Location"] == again.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    after = written(provider, shop.tenant.id)
    assert (after.purchases - before.purchases, after.charges - before.charges) == (1, 1)


@pytest.mark.parametrize("change", [
    lambda s: s.body(s.plan), lambda s: s.body(card_number=DECLINE),
    lambda s: s.body(amount_minor=s.addon.price_minor + 100),
], ids=["another product", "another card", "another amount"])
def test_the_same_key_with_another_body_is_refused(api: FlaskClient, provider: DataProvider, shop: Shop,
                                                    change: Callable[[Shop], Body]) -> None:
    key = str(uuid.uuid4())
    first = buy(api, shop, shop.body(), key)
    assert first.status_code == 202
    before = written(provider, shop.tenant.id)
    assert_refused(buy(api, shop, change(shop), key), 422, "Idempotency-Key")
    assert written(provider, shop.tenant.id) == before
    assert api.get(first.json["status_url"], headers=shop.admin).json["product_code"] == shop.addon.code


def test_keys_belong_to_a_tenant(api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    other = open_shop(api, provider)
    key = str(uuid.uuid4())
    ours, theirs = buy(api, shop, shop.body(), key), buy(api, other, other.body(), key)
    assert ours.status_code == theirs.status_code == 202
    assert ours.json["id"] != theirs.json["id"]


def test_concurrent_duplicates_record_one_purchase(app: Flask, provider: DataProvider, shop: Shop) -> None:
    key, body, threads = str(uuid.uuid4()), shop.body(), 8
    before = written(provider, shop.tenant.id)
    barrier = threading.Barrier(threads)
    answers: list[tuple[int, Any]] = []

    def submit() -> None:
        client = app.test_client()
        barrier.wait()
        response = buy(client, shop, body, key)
        answers.append((response.status_code, response.json))

    workers = [threading.Thread(target=submit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [status for status, _ in answers] == [202] * threads, answers
    assert len({answer["id"] for _, answer in answers}) == 1
    after = written(provider, shop.tenant.id)
    assert (after.purchases - before.purchases, after.charges - before.charges) == (1, 1)


# --- one tenant, another tenant's purchases ---------------------------------------------------

def test_another_tenant_cannot_read_a_purchase_or_see_it_listed(
        api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    other = open_shop(api, provider)
    theirs = buy(api, other, other.body())
    assert theirs.status_code == 202
    assert_refused(api.get(theirs.json["status_url"], headers=shop.admin), 404, "purchase_id")
    assert_refused(api.get(f"{PURCHASES}/{uuid.uuid4()}", headers=shop.admin), 404, "purchase_id")
    listed = {p["id"] for p in api.get(PURCHASES, headers=shop.admin).json["items"]}
    assert theirs.json["id"] not in listed
    page = api.get(f"/purchases/{theirs.json['id']}", headers=shop.admin)  # not a cookie: sign in
    assert page.status_code == 302
    own = {p["id"] for p in api.get(PURCHASES, headers=bearer(other.tokens["admin"])).json["items"]}
    assert theirs.json["id"] in own


def test_another_tenants_purchase_page_is_not_found(app: Flask, api: FlaskClient, provider: DataProvider,
                                                    shop: Shop) -> None:
    other = open_shop(api, provider)
    theirs = buy(api, other, other.body())
    page = tenants.call_as(app.test_client(), app, "GET", f"/purchases/{theirs.json['id']}",
                           shop.tokens["admin"])
    assert page.status_code == 404
    assert other.addon.name not in page.get_data(as_text=True)


def test_a_tenant_lists_the_active_products_only(api: FlaskClient, shop: Shop) -> None:
    response = api.get(f"{PURCHASES}/products", headers=shop.admin)
    assert response.status_code == 200
    codes = {p["code"]: p for p in response.json["items"]}
    assert shop.addon.code in codes and shop.plan.code in codes and shop.retired.code not in codes
    assert codes[shop.plan.code]["price"] == "49.00 EUR" and codes[shop.plan.code]["plan"] == "standard"
    assert_refused(api.get(f"{PURCHASES}/products", headers=bearer(shop.tokens["employee"])), 403, None)


def test_an_unreachable_gateway_is_503_and_nothing_is_written(settings: Settings, provider: DataProvider,
                                                              shop: Shop) -> None:
    with web_app(settings) as app:
        # A real sandbox adapter whose processor cannot be reached (nothing listens on port 1).
        app.extensions["allotment.gateway"] = SandboxGateway("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                                             settings.secret_key)
        before = written(provider, shop.tenant.id)
        body = assert_refused(buy(app.test_client(), shop, shop.body()), 503, None)
    assert "try again" in body["reason"]
    assert written(provider, shop.tenant.id) == before
