"""Currencies the catalogue accepts and how an amount in minor units reads."""
from __future__ import annotations

# ISO 4217 code -> digits after the decimal point (the minor unit).
CURRENCIES: dict[str, int] = {
    "EUR": 2, "USD": 2, "GBP": 2, "PLN": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "JPY": 0,
}
# Prices above this are a typing error, not a product (and stay far from BIGINT's limit).
MAX_AMOUNT_MINOR = 10**12


def currency_problem(code: str) -> str | None:
    """Why ``code`` is not a currency the platform sells in, or None."""
    if code not in CURRENCIES:
        return f"must be one of {', '.join(sorted(CURRENCIES))} (ISO 4217)"
    return None


def format_amount(amount_minor: int, currency: str) -> str:
    """``4900, "EUR"`` -> ``"49.00 EUR"`` (``"500 JPY"`` for a currency without decimals)."""
    digits = CURRENCIES.get(currency, 2)
    if digits == 0:
        return f"{amount_minor} {currency}"
    whole, minor = divmod(amount_minor, 10**digits)
    return f"{whole}.{minor:0{digits}d} {currency}"
