"""The email rule every way in shares: the fast path for plain addresses accepts only what
email_validator accepts, and writes it back the same way (lower-cased)."""
from __future__ import annotations

import random
import string

import pytest
from email_validator import EmailNotValidError, validate_email

from domain.employment.errors import InvalidInput
from domain.employment.values import clean_email

LOCAL = string.ascii_letters + string.digits + ".-_+!#$%&'*/=?^`{|}~"
HOST = string.ascii_letters + string.digits + "--"
TLDS = ["com", "io", "test", "local", "c", "x1", "example", "ARPA", "onion", "co", "xn--p1ai", "a" * 64]
ANY = string.ascii_letters + string.digits + ".-_+@!#$%&'*/=?^`{|}~\"() ,;:<>[]\\é"


def _address(rng: random.Random) -> str:
    if rng.random() < 0.7:
        local = "".join(rng.choice(LOCAL) for _ in range(rng.randint(1, 70)))
        labels = ["".join(rng.choice(HOST) for _ in range(rng.randint(1, 70)))
                  for _ in range(rng.randint(1, 3))]
        return f"{local}@{'.'.join([*labels, rng.choice(TLDS)])}"
    return "".join(rng.choice(ANY) for _ in range(rng.randint(1, 40)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_email_agrees_with_email_validator(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10_000):
        address = _address(rng)
        try:
            expected: str | None = validate_email(address, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            expected = None
        try:
            got: str | None = clean_email(address)
        except InvalidInput:
            got = None
        if len(address.strip()) > 320 or address != address.strip():
            continue  # trimmed or refused for length before any syntax check
        assert got == expected, address
