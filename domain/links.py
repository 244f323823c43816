"""The secret links emailed to a person (an invitation, an address verification, a password
reset): the token only the email carries, and the hash the database keeps of it."""
from __future__ import annotations

import hashlib
import re
import secrets

# What a token made by ``new_token`` looks like (and a bit more): a URL path segment of the
# URL-safe base64 alphabet. A link whose token has another shape is unknown without a lookup.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")


def new_token() -> str:
    """A fresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """How a link's token is kept: its SHA-256 (the token is random, 256 bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    """True if ``token`` has the shape of one ``new_token`` makes."""
    return _TOKEN.fullmatch(token) is not None
