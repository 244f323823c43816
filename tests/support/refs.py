"""Unique names so tests that commit never collide (cosmicpython's random_refs)."""
from __future__ import annotations

import secrets


def slug(prefix: str = "t") -> str:
    """A fresh tenant slug."""
    return f"{prefix}-{secrets.token_hex(5)}"


def email(prefix: str = "user") -> str:
    """A fresh email address."""
    return f"{prefix}-{secrets.token_hex(5)}@example.com"


def client_ip() -> str:
    """A client address no other request of the run has used (rate limits count per IP)."""
    return "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))


def signup_body(**overrides: str) -> dict[str, str]:
    """A valid signup request body."""
    name = slug()
    body = {"organisation_name": f"Org {name}", "slug": name, "admin_name": "Ada Admin",
            "email": email("admin"), "password": "correct horse battery staple"}
    body.update(overrides)
    return body
