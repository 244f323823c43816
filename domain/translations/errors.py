"""Refusals of the translations context."""
from __future__ import annotations

from domain.errors import DomainError


class InvalidTranslation(DomainError):
    """A locale, key or text the catalogue cannot take (422, names the field)."""

    status = 422
