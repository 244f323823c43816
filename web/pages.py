"""What the HTML list pages share: the page number asked for in the query string."""
from __future__ import annotations

from flask import request

from domain.text import whole_number


def page_number(maximum: int = 1_000_000) -> int:
    """``?page=`` as a number from 1 to ``maximum``; 1 when it is missing or anything else
    (a page link someone edited shows the first page, not an error)."""
    number = whole_number(request.args.get("page", ""), 7) or 0
    return number if 0 < number <= maximum else 1
