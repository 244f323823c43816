"""Checks of what an author types: titles, headings and Markdown bodies (one rule for the
JSON API and the HTML forms alike)."""
from __future__ import annotations

import re

from domain.publications.errors import InvalidInput
from domain.publications.rendering import TooComplex, to_html
from domain.text import CONTROL

MAX_TITLE = 200
MAX_BODY = 100_000
# Control characters but tab, newline and carriage return (PostgreSQL refuses NUL in text).
_CONTROL_IN_BODY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_title(value: str, field: str = "title") -> str:
    """A title or heading: trimmed, 1 to 200 characters, on one line."""
    value = value.strip()
    if not value:
        raise InvalidInput("must not be empty", field=field)
    if len(value) > MAX_TITLE:
        raise InvalidInput(f"must be at most {MAX_TITLE} characters", field=field)
    if CONTROL.search(value):
        raise InvalidInput("must not contain control characters", field=field)
    return value


def clean_body(value: str, field: str = "body") -> str:
    """A Markdown body: at most 100,000 characters, lines as written (trailing space off)."""
    if len(value) > MAX_BODY:
        raise InvalidInput(f"must be at most {MAX_BODY:,} characters", field=field)
    if _CONTROL_IN_BODY.search(value):
        raise InvalidInput("must not contain control characters", field=field)
    return value.rstrip()


def rendered_body(value: str, field: str = "body") -> tuple[str, str]:
    """A Markdown body checked (``clean_body``) and its HTML; refused if that would cost far
    more than its length (``rendering.TooComplex``)."""
    body = clean_body(value, field)
    try:
        return body, to_html(body)
    except TooComplex as exc:
        raise InvalidInput(str(exc), field=field) from None
