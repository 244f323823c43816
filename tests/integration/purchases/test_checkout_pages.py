"""The HTML checkout, driven as a browser does (signed in through the form, every POST with the
CSRF token a rendered page carried): the form, CSRF, double submission, bad input, and the
status page following a purchase to its outcome with real workers."""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain.db.provider import DataProvider
from tests.integration.purchases.helpers import (
    CHECKOUT,
    Shop,
    add_product,
    browser_of,
    form_of,
    hidden,
    offer_of,
    purchase_of,
    retire,
    written,
)
from tests.support.pages import field_errors, goes_to_sign_in


@pytest.fixture(scope="module")
def browser(app: Flask, shop: Shop) -> FlaskClient:
    """The shop's admin, signed in to a browser."""
    return browser_of(app, shop)


def test_the_checkout_offers_the_active_products_with_their_prices(browser: FlaskClient, shop: Shop) -> None:
    page = browser.get(CHECKOUT).get_data(as_text=True)
    assert f"{shop.addon.name} — 15.00 EUR" in page and f"{shop.plan.name} — 49.00 EUR" in page
    assert shop.retired.name not in page
    first, second = hidden(page, "idempotency_key"), hidden(browser.get(CHECKOUT).get_data(as_text=True),
                                                            "idempotency_key")
    assert first != second  # one key per rendering


def test_a_visitor_is_sent_to_sign_in_and_an_employee_is_forbidden(app: Flask, client: FlaskClient,
                                                                     shop: Shop) -> None:
    assert goes_to_sign_in(client.get(CHECKOUT))
    assert browser_of(app, shop, "employee").get(CHECKOUT).status_code == 403


def test_a_checkout_without_its_csrf_token_is_refused_and_writes_nothing(
        browser: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    form = form_of(browser, shop.addon.code)
    before = written(provider, shop.tenant.id)
    for token in ("", "forged"):
        response = browser.post(CHECKOUT, data={**form, "csrf_token": token})
        assert response.status_code == 400
    assert written(provider, shop.tenant.id) == before


def test_submitting_the_same_form_twice_records_one_purchase(browser: FlaskClient, provider: DataProvider,
                                                             shop: Shop) -> None:
    form = form_of(browser, shop.addon.code)
    before = written(provider, shop.tenant.id)
    first = purchase_of(browser.post(CHECKOUT, data=form))
    again = purchase_of(browser.post(CHECKOUT, data=form))
    assert first == again
    after = written(provider, shop.tenant.id)
    assert (after.purchases - before.purchases, after.charges - before.charges) == (1, 1)
    # Another rendering is another purchase.
    assert purchase_of(browser.post(CHECKOUT, data=form_of(browser, shop.addon.code))) != first


def test_a_stale_form_used_for_another_product_gets_a_new_key(browser: FlaskClient, provider: DataProvider,
                                                              shop: Shop) -> None:
    form = form_of(browser, shop.addon.code)
    purchase_of(browser.post(CHECKOUT, data=form))
    before = written(provider, shop.tenant.id)
    page = browser.get(CHECKOUT).get_data(as_text=True)
    response = browser.post(CHECKOUT, data={**form, "offer": offer_of(page, shop.plan.code)})
    assert response.status_code == 422
    assert "already used" in " ".join(field_errors(response, "offer"))
    assert hidden(response.get_data(as_text=True), "idempotency_key") != form["idempotency_key"]
    assert written(provider, shop.tenant.id) == before


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"card_number": "4242424242424241"}, "card_number", "check digit"),
    ({"card_number": "5555555555554444"}, "card_number", "not a sandbox test card"),
    ({"card_number": ""}, "card_number", "required"),
    ({"offer": ""}, "offer", "choose one of the products"),
    ({"offer": "no-such-product|100|EUR"}, "offer", "no such product"),
    ({"offer": "forged"}, "offer", "choose one of the products"),
    # '²' is a digit to str.isdigit() but not to int(): was a 500.
    ({"offer": "no-such-product|\u00b2|EUR"}, "offer", "choose one of the products"),
    # PostgreSQL's text takes no NUL: was a 500.
    ({"offer": "x\x00|1500|EUR"}, "offer", "no such product"),
    ({"idempotency_key": ""}, "idempotency_key", "required"),
], ids=["card failing the Luhn check", "not a test card", "no card", "no product", "unknown product",
        "forged offer", "a price in superscript digits", "a NUL in the code", "no key"])
def test_bad_input_is_shown_beside_its_field_and_writes_nothing(
        browser: FlaskClient, provider: DataProvider, shop: Shop, *, change: dict[str, str], field: str,
        reason: str) -> None:
    form = {**form_of(browser, shop.addon.code), **change}
    before = written(provider, shop.tenant.id)
    response = browser.post(CHECKOUT, data=form)
    assert response.status_code == 422
    assert reason in " ".join(field_errors(response, field)).lower()
    assert written(provider, shop.tenant.id) == before


def test_a_price_changed_or_product_retired_since_the_page_was_shown_is_refused(
        browser: FlaskClient, provider: DataProvider, shop: Shop) -> None:
    product = add_product(provider, price_minor=1200)
    form = form_of(browser, product.code)
    before = written(provider, shop.tenant.id)
    mismatched = browser.post(CHECKOUT, data={**form, "offer": form["offer"].replace("|1200|", "|1100|")})
    assert mismatched.status_code == 422
    assert "12.00 EUR" in " ".join(field_errors(mismatched, "offer"))
    retire(provider, product.code)
    gone = browser.post(CHECKOUT, data=form)
    assert gone.status_code == 422
    assert "retired" in " ".join(field_errors(gone, "offer"))
    assert written(provider, shop.tenant.id) == before


def test_a_pending_purchase_page_refreshes_itself(browser: FlaskClient, shop: Shop) -> None:
    # The gateway is down for this card: pending for at least 15 s, even with a worker running.
    pending = purchase_of(browser.post(CHECKOUT, data=form_of(browser, shop.addon.code, "4000000000000259")))
    page = browser.get(f"/purchases/{pending}").get_data(as_text=True)
    assert 'data-status="pending"' in page and 'http-equiv="refresh"' in page
