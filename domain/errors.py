"""Errors the domain raises; the web tier maps them to 4xx answers naming field and reason."""
from __future__ import annotations


class DomainError(Exception):
    """A request the domain refuses, with the offending field and a reason a person can read."""

    status = 422

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class NotFound(DomainError):
    """The thing asked for does not exist (or belongs to another tenant)."""

    status = 404


class Conflict(DomainError):
    """The request clashes with the current state (a taken slug, a used email)."""

    status = 409


class Forbidden(DomainError):
    """The principal may not do this."""

    status = 403


class Transient(Exception):
    """A failure that may go away when the work is tried again (a gateway timeout, a tenant
    moving to its own database): task runners retry it with backoff."""
