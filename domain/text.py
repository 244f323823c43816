"""Text rules every context shares."""
from __future__ import annotations

import re

# C0 control characters and DEL. PostgreSQL refuses NUL in text, and none of them belongs in a
# name, an address, a storage key or a header; contexts refuse them or drop them.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Half of a UTF-16 pair standing alone, which JSON's "\ud800" escape can write: no Unicode text
# holds one, and UTF-8 cannot carry it (to PostgreSQL, to a parser in C).
LONE_SURROGATE = re.compile("[\ud800-\udfff]")

_DIGITS = re.compile(r"[0-9]+")


def without_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate made "?"."""
    return text.encode("utf-8", "replace").decode("utf-8")


def whole_number(text: str, max_digits: int) -> int | None:
    """``text`` as a number if it is 1 to ``max_digits`` ASCII digits, else None.
    ``str.isdigit()`` is no check for this: it also takes '²', which ``int()`` refuses, and
    ``int()`` refuses more than 4,300 digits."""
    if len(text) > max_digits or not _DIGITS.fullmatch(text):
        return None
    return int(text)
