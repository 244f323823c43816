"""The operators' purchases API: the catalogue (create, reprice, rename, retire, reactivate),
refund requests and a tenant's ledger; bad input refused naming the field; tenants refused."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from domain.db.provider import DataProvider
from domain.messaging.tables import outbox
from tests.integration.purchases.helpers import PURCHASES, UNAVAILABLE, Shop, add_product, buy, open_shop
from tests.integration.web.helpers import assert_refused
from tests.support import refs
from tests.support.tenants import bearer

PRODUCTS = "/api/v1/operations/products"


def _op(shop: Shop) -> dict[str, str]:
    return bearer(shop.operator_token)


def _product(**changes: Any) -> dict[str, Any]:
    return {"code": refs.slug("op"), "name": "Extra storage", "kind": "addon", "price_minor": 990,
            "currency": "EUR", **changes}


def _product_rows(provider: DataProvider, code: str) -> list[tuple[Any, ...]]:
    with provider.management() as session:
        return [tuple(r) for r in session.execute(text(
            "SELECT code, name, kind, plan, price_minor, currency, active FROM products WHERE code = :c"),
            {"c": code})]


def _refund_messages(provider: DataProvider, purchase_id: str) -> int:
    with provider.management() as session:
        return session.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.type == "purchases.RefundPurchase",
            outbox.c.payload["purchase_id"].astext == purchase_id)) or 0


def test_an_operator_manages_the_catalogue(api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    body = _product(kind="plan", plan="professional", price_minor=9900, name="Professional")
    created = api.post(PRODUCTS, json=body, headers=_op(shop))
    assert created.status_code == 201, created.json
    shown = ("code", "name", "kind", "plan", "price_minor", "currency")
    assert created.json == {**{k: body[k] for k in shown}, "price": "99.00 EUR", "active": True}
    code = body["code"]
    renamed = api.patch(f"{PRODUCTS}/{code}", json={"name": "Professional (yearly)", "price_minor": 99000},
                        headers=_op(shop))
    assert renamed.status_code == 200
    assert (renamed.json["name"], renamed.json["price"]) == ("Professional (yearly)", "990.00 EUR")
    assert api.post(f"{PRODUCTS}/{code}/retire", headers=_op(shop)).json["active"] is False
    listed = {p["code"]: p for p in api.get(PRODUCTS, headers=_op(shop)).json["items"]}
    assert listed[code]["active"] is False
    on_sale = {p["code"] for p in api.get(f"{PURCHASES}/products", headers=shop.admin).json["items"]}
    assert code not in on_sale
    assert api.post(f"{PRODUCTS}/{code}/reactivate", headers=_op(shop)).json["active"] is True
    on_sale = {p["code"] for p in api.get(f"{PURCHASES}/products", headers=shop.admin).json["items"]}
    assert code in on_sale


@pytest.mark.parametrize(("changes", "field"), [
    ({"kind": "plan"}, "plan"),
    ({"plan": "standard"}, "plan"),
    ({"kind": "bundle"}, "kind"),
    ({"currency": "XYZ"}, "currency"),
    ({"currency": "eur"}, "currency"),
    ({"price_minor": -1}, "price_minor"),
    ({"price_minor": 9.9}, "price_minor"),
    ({"price_minor": 10**13}, "price_minor"),
    ({"code": "Extra Storage"}, "code"),
    ({"code": "-extra"}, "code"),
    ({"name": "   "}, "name"),
    ({"name": "Extra\x00storage"}, "name"),
    ({"plan": "Not A Plan", "kind": "plan"}, "plan"),
    ({"discount": 10}, "discount"),
], ids=["plan without its plan", "add-on with a plan", "unknown kind", "unknown currency",
        "lower-case currency", "negative price", "fractional price", "absurd price", "code with spaces",
        "code starting with a dash", "blank name", "NUL in the name", "malformed plan", "unknown field"])
def test_a_bad_product_is_refused_naming_the_field_and_not_created(
        api: FlaskClient, provider: DataProvider, shop: Shop, changes: dict[str, Any], field: str) -> None:
    body = _product(**changes)
    assert_refused(api.post(PRODUCTS, json=body, headers=_op(shop)), 422, field)
    assert _product_rows(provider, body["code"]) == []


def test_a_taken_code_is_a_conflict_and_the_product_is_unchanged(api: FlaskClient, provider: DataProvider,
                                                                 shop: Shop) -> None:
    before = _product_rows(provider, shop.addon.code)
    body = _product(code=shop.addon.code, name="Impostor", price_minor=1)
    assert_refused(api.post(PRODUCTS, json=body, headers=_op(shop)), 409, "code")
    assert _product_rows(provider, shop.addon.code) == before


@pytest.mark.parametrize(("body", "field"), [
    ({}, "body"), ({"price_minor": -5}, "price_minor"), ({"currency": "XYZ"}, "currency"),
    ({"code": "renamed"}, "code"), ({"name": ""}, "name"), ({"currency": "JPY"}, "price_minor"),
    ({"name": "Renamed", "currency": "GBP"}, "price_minor"),
], ids=["nothing to change", "negative price", "unknown currency", "code is not changeable", "empty name",
        "a new currency without its price", "a rename and a new currency without its price"])
def test_a_bad_change_is_refused_and_the_product_is_unchanged(
        api: FlaskClient, provider: DataProvider, shop: Shop, body: dict[str, Any], field: str) -> None:
    before = _product_rows(provider, shop.addon.code)
    response = api.patch(f"{PRODUCTS}/{shop.addon.code}", json=body, headers=_op(shop))
    assert_refused(response, 422, field)
    assert _product_rows(provider, shop.addon.code) == before


def test_a_currency_the_product_already_has_keeps_its_price(api: FlaskClient, provider: DataProvider,
                                                              shop: Shop) -> None:
    product = add_product(provider, price_minor=2000)
    response = api.patch(f"{PRODUCTS}/{product.code}", json={"currency": "EUR"}, headers=_op(shop))
    assert response.status_code == 200, response.json
    assert (response.json["price_minor"], response.json["currency"]) == (2000, "EUR")


@pytest.mark.parametrize("code", ["no-such-product", "a%00b"], ids=["unknown", "a NUL in the code"])
@pytest.mark.parametrize(("method", "suffix"), [("PATCH", ""), ("POST", "/retire"), ("POST", "/reactivate")],
                         ids=["change", "retire", "reactivate"])
def test_an_unknown_product_is_not_found(api: FlaskClient, shop: Shop, method: str, suffix: str,
                                         code: str) -> None:
    response = api.open(f"{PRODUCTS}/{code}{suffix}", method=method,
                        json={"name": "x"} if method == "PATCH" else None, headers=_op(shop))
    assert_refused(response, 404, "product_code")


def test_a_repriced_product_refuses_the_old_price_and_keeps_recorded_purchases(
        api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    product = add_product(provider, price_minor=2000)
    old_body = shop.body(product)
    recorded = buy(api, shop, old_body)
    assert recorded.status_code == 202
    assert api.patch(f"{PRODUCTS}/{product.code}", json={"price_minor": 2500, "currency": "GBP"},
                     headers=_op(shop)).status_code == 200
    assert_refused(buy(api, shop, old_body), 422, "currency")
    assert_refused(buy(api, shop, {**old_body, "currency": "GBP"}), 422, "amount_minor")
    assert buy(api, shop, {**old_body, "currency": "GBP", "amount_minor": 2500}).status_code == 202
    kept = api.get(recorded.json["status_url"], headers=shop.admin).json
    assert (kept["amount_minor"], kept["currency"]) == (2000, "EUR")


def test_tenants_are_refused_the_operator_api(api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    body = _product()
    owner = bearer(shop.tokens["owner"])
    assert_refused(api.post(PRODUCTS, json=body, headers=owner), 403, None)
    assert_refused(api.get(PRODUCTS, headers=owner), 403, None)
    assert_refused(api.post(f"{PRODUCTS}/{shop.addon.code}/retire", headers=owner), 403, None)
    assert_refused(api.get(f"/api/v1/operations/tenants/{shop.tenant.id}/ledger", headers=owner), 403, None)
    assert_refused(api.post(PRODUCTS, json=body), 401, "Authorization")
    assert _product_rows(provider, body["code"]) == []
    assert _product_rows(provider, shop.addon.code)[0][-1] is True


def test_only_a_completed_purchase_can_be_refunded(api: FlaskClient, provider: DataProvider,
                                                   shop: Shop) -> None:
    # Pending for 15 s at least, even if a worker runs: the gateway is down for this card.
    pending = buy(api, shop, shop.body(card_number=UNAVAILABLE)).json["id"]
    url = f"/api/v1/operations/purchases/{pending}/refund"
    assert_refused(api.post(url, json={"reason": "changed my mind"}, headers=_op(shop)), 409, "purchase_id")
    assert_refused(api.post(url, json={}, headers=_op(shop)), 422, "reason")
    assert_refused(api.post(url, json={"reason": " "}, headers=_op(shop)), 422, "reason")
    assert_refused(api.post(f"/api/v1/operations/purchases/{uuid.uuid4()}/refund", json={"reason": "x"},
                            headers=_op(shop)), 404, "purchase_id")
    assert_refused(api.post(url, json={"reason": "x"}, headers=shop.admin), 403, None)
    assert _refund_messages(provider, pending) == 0
    assert api.get(f"/api/v1/operations/purchases/{pending}", headers=_op(shop)).json["status"] == "pending"


def test_a_ledger_is_asked_for_a_known_tenant(api: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    assert_refused(api.get(f"/api/v1/operations/tenants/{uuid.uuid4()}/ledger", headers=_op(shop)), 404,
                   "tenant_id")
    fresh = open_shop(api, provider)
    empty = api.get(f"/api/v1/operations/tenants/{fresh.tenant.id}/ledger", headers=_op(shop))
    assert empty.status_code == 200
    assert empty.json == {"tenant_id": str(fresh.tenant.id), "entries": [], "balance": []}
