"""Refusals of the publications context (the web tier shows each next to its field)."""
from __future__ import annotations

from domain.errors import Conflict, DomainError, NotFound


class InvalidInput(DomainError):
    """A value the use case cannot accept (422, names the field)."""

    status = 422


class PublicationNotFound(NotFound):
    """No such publication in this tenant (another tenant's is not found either)."""

    def __init__(self) -> None:
        super().__init__("no such publication", field="publication_id")


class SectionNotFound(NotFound):
    """No such section in this publication."""

    def __init__(self) -> None:
        super().__init__("no such section", field="section_id")


class NotEditable(Conflict):
    """The publication is out (or going out): it can no longer be changed (409)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the publication is {status}; only drafts, scheduled and failed ones "
                         "can be changed", field="status")
