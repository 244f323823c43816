"""Errors of the tenancy context."""
from __future__ import annotations

from domain.errors import Conflict


class SlugTaken(Conflict):
    """Another tenant already uses this slug."""

    def __init__(self) -> None:
        super().__init__("is already taken", field="slug")
