"""Messages of the publications context."""
from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from domain.messaging.contracts import Contract


class PublishPublicationV1(Contract):
    """Command: render a publication, resolve its audience and send it out (once)."""

    message_type: ClassVar[str] = "publications.PublishPublication"
    kind: ClassVar[Literal["command", "event"]] = "command"

    publication_id: uuid.UUID
    tenant_id: uuid.UUID


class PublicationPublishedV1(Contract):
    """Event: a publication is out. ``recipient_ids`` are users it reaches (None: every member).

    A large audience is announced in ``parts`` events of at most 500 recipients each (this
    is part ``part``), so the notices of 5,000 people are written by ten deliveries, each a
    transaction of its own, never by one.
    """

    message_type: ClassVar[str] = "publications.PublicationPublished"

    publication_id: uuid.UUID
    tenant_id: uuid.UUID
    title: str
    author_name: str
    recipient_ids: list[uuid.UUID] | None = None
    part: int = 1
    parts: int = 1
