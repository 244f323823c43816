"""The rules every way in (API, forms, import files) applies to what a person typed."""
from __future__ import annotations

import re
from datetime import date

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from domain.employment.errors import InvalidInput
from domain.employment.models import STATUSES
from domain.text import CONTROL

NAME_MAX = 200
EMAIL_MAX = 320


def clean_name(value: str, field: str = "name") -> str:
    """A name: trimmed, 1-200 characters, no control characters."""
    name = value.strip()
    if not name:
        raise InvalidInput("must not be empty", field=field)
    if len(name) > NAME_MAX:
        raise InvalidInput(f"at most {NAME_MAX} characters", field=field)
    if CONTROL.search(name):
        raise InvalidInput("must not contain control characters", field=field)
    return name


# A plain ASCII address (dot-atom local part, host names with a letter TLD): one that
# email_validator accepts and writes back unchanged but for the domain's case. Checked
# here in a microsecond; anything else (Unicode, quoting, punycode, special-use names) goes
# through email_validator, which costs 40-100 us: most of an import's checking.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"(?![A-Za-z0-9-]{2}--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PLAIN = re.compile(rf"(?P<local>{_ATOM}(?:\.{_ATOM})*)@(?P<domain>(?:{_LABEL}\.)+(?P<tld>[A-Za-z]{{2,63}}))")
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def _plain(email: str) -> bool:
    found = _PLAIN.fullmatch(email)
    return (found is not None and len(email) <= 254 and len(found["local"]) <= 64
            and len(found["domain"]) <= 253 and found["tld"].lower() not in _SPECIAL_USE)


def clean_email(value: str, field: str = "work_email") -> str:
    """A work email, lower-case (work emails are compared without case)."""
    email = value.strip()
    if not email:
        raise InvalidInput("must not be empty", field=field)
    if len(email) > EMAIL_MAX:
        raise InvalidInput(f"at most {EMAIL_MAX} characters", field=field)
    if _plain(email):
        return email.lower()
    try:
        checked = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"not a valid email address: {exc}", field=field) from None
    return checked.normalized.lower()


def check_dates(start: date | None, end: date | None) -> None:
    """An end date is not before the start date."""
    if start is not None and end is not None and end < start:
        raise InvalidInput("must not be before the start date", field="end_date")


def check_status(status: str) -> str:
    """One of the known statuses."""
    if status not in STATUSES:
        raise InvalidInput(f"must be one of {', '.join(STATUSES)}", field="status")
    return status
