"""Card numbers, currencies, amounts and the request hash: pure functions, no I/O."""
from __future__ import annotations

import uuid

import pytest

from domain.purchases.gateway import card_number_problem, luhn_valid, normalise_card_number
from domain.purchases.money import currency_problem, format_amount
from domain.purchases.sandbox import TEST_CARDS
from domain.purchases.services import PurchaseRequest, request_hash


@pytest.mark.parametrize("number", sorted(TEST_CARDS))
def test_every_sandbox_test_card_passes_the_luhn_check(number: str) -> None:
    assert luhn_valid(number)
    assert card_number_problem(number) is None


@pytest.mark.parametrize(("number", "problem"), [
    ("4242424242424241", "check digit"),
    ("4242 4242 4242 4243", "check digit"),
    ("42424242", "12 to 19 digits"),
    ("42424242424242424242", "12 to 19 digits"),
    ("4242-4242-4242-424x", "12 to 19 digits"),
    ("", "12 to 19 digits"),
    ("\uff14\uff12" * 8, "12 to 19 digits"),  # full-width digits are not ASCII
], ids=["last digit off", "spaced, last digit off", "too short", "too long", "a letter", "empty",
        "full-width digits"])
def test_a_bad_card_number_is_named_with_its_problem(number: str, problem: str) -> None:
    found = card_number_problem(number)
    assert found is not None and problem in found


def test_spaces_and_dashes_are_how_people_type_card_numbers() -> None:
    assert normalise_card_number("4242 4242-4242 4242") == "4242424242424242"
    assert card_number_problem("4242 4242 4242 4242") is None


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (4900, "EUR", "49.00 EUR"), (5, "USD", "0.05 USD"), (0, "GBP", "0.00 GBP"),
    (123456789, "SEK", "1234567.89 SEK"), (500, "JPY", "500 JPY"),
], ids=["euros", "cents", "zero", "large", "no minor unit"])
def test_an_amount_in_minor_units_reads_as_people_expect(amount: int, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


def test_only_listed_iso_currencies_are_accepted() -> None:
    assert currency_problem("EUR") is None
    for bad in ("eur", "XYZ", "EURO", ""):
        assert currency_problem(bad) is not None, bad


def _request(**changes: object) -> PurchaseRequest:
    fields = {"product_code": "standard", "amount_minor": 4900, "currency": "EUR",
              "card_number": "4242424242424242", **changes}
    return PurchaseRequest(**fields)  # type: ignore[arg-type]


def test_the_request_hash_is_stable_and_holds_no_card_number() -> None:
    tenant = uuid.uuid4()
    first = request_hash(tenant, _request(), "fingerprint-a")
    assert first == request_hash(tenant, _request(), "fingerprint-a")
    assert len(first) == 64 and "4242" not in first


@pytest.mark.parametrize("change", [
    {"product_code": "professional"}, {"amount_minor": 4901}, {"currency": "USD"},
], ids=["product", "amount", "currency"])
def test_the_request_hash_changes_with_what_is_bought(change: dict[str, object]) -> None:
    tenant = uuid.uuid4()
    assert request_hash(tenant, _request(), "fp") != request_hash(tenant, _request(**change), "fp")


def test_the_request_hash_changes_with_the_card_and_the_tenant() -> None:
    tenant = uuid.uuid4()
    assert request_hash(tenant, _request(), "fp-a") != request_hash(tenant, _request(), "fp-b")
    assert request_hash(tenant, _request(), "fp") != request_hash(uuid.uuid4(), _request(), "fp")
