"""What the HTML list pages share: the page number asked for in the query string."""
from __future__ import annotations

import re

from flask import request

_NUMBER = re.compile(r"[0-9]{1,7}")  # ASCII digits only: str.isdigit() also takes '²', which int() refuses


def page_number(maximum: int = 1_000_000) -> int:
    """``?page=`` as a number from 1 to ``maximum``; 1 when it is missing or anything else
    (a page link someone edited shows the first page, not an error)."""
    raw = request.args.get("page", "")
    number = int(raw) if _NUMBER.fullmatch(raw) else 0
    return number if 0 < number <= maximum else 1
