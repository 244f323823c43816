"""The user's file name: kept for display and Content-Disposition only, never for a key.

A name that tries to be a path (``../``, a separator) or carries control characters is
refused with the reason, not quietly rewritten: the uploader learns what was wrong.
"""
from __future__ import annotations

import re
import unicodedata

from domain.assets.errors import InvalidUpload

MAX_NAME_CHARS = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def checked_filename(raw: str | None) -> str:
    """The file name, NFC-normalised and trimmed; InvalidUpload naming ``filename`` otherwise."""
    if raw is None or not raw.strip():
        raise InvalidUpload("a file name is required", field="filename")
    name = unicodedata.normalize("NFC", raw).strip()
    if _CONTROL.search(name):
        raise InvalidUpload("must not contain control characters", field="filename")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidUpload("must be a plain file name, not a path ('/', '\\' or '..')", field="filename")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidUpload(f"must be at most {MAX_NAME_CHARS} characters", field="filename")
    return name


def rendition_filename(filename: str, rendition: str, extension: str) -> str:
    """The download name of a rendition: ``photo-640.webp`` for ``photo.jpg``."""
    stem = filename.rsplit(".", 1)[0] if "." in filename.lstrip(".") else filename
    return f"{stem[:200]}-{rendition}.{extension}"
