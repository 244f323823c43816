"""Refusals of the employment context (the web tier shows each next to its field)."""
from __future__ import annotations

from domain.errors import Conflict, DomainError


class InvalidInput(DomainError):
    """A value the use case cannot accept (422, names the field)."""

    status = 422


class InUse(Conflict):
    """The thing is still used (a job type held, a unit with people or sub-units): 409."""
