"""Errors of the identity context."""
from __future__ import annotations

from domain.errors import Conflict, DomainError


class EmailTaken(Conflict):
    """An account with this email already exists."""

    def __init__(self) -> None:
        super().__init__("is already registered", field="email")


class BadCredentials(DomainError):
    """Email and password do not match an active account."""

    status = 401

    def __init__(self) -> None:
        super().__init__("email or password is wrong", field="password")
